"""The run folder format: what the writers put in config.json and metrics.jsonl is what load_run reads back."""

import json

import pytest

from nin.errors import ConfigError
from nin.train import rundir


def _row(epoch, **kw):
    return {"epoch": epoch, "step": 10 * epoch, "test_error_pct": 50.0 - epoch, "complete": True, **kw}


def _write(run, rows):
    rundir.write_config(
        run,
        config={"batch_size": 16, "schedule": "constant"},
        runtime={"device": "cpu"},
        model_options={"num_classes": 3},
        classes=["a", "b", "c"],
        train_size=160,
        test_size=40,
        world_size=1,
    )
    rundir.start_metrics(run, None)
    for row in rows:
        rundir.append_metrics(run, row)


def test_written_run_reads_back(tmp_path):
    _write(tmp_path, [_row(1), _row(2), _row(3, step=25, complete=False)])
    run = rundir.load_run(tmp_path)
    assert run.meta["classes"] == ["a", "b", "c"] and run.meta["world_size"] == 1 and "nin_version" in run.meta
    assert run.config["batch_size"] == 16 and run.steps_per_epoch == 10
    assert [r["epoch"] for r in run.rows] == [1, 2, 3]
    assert run.series("test_error_pct").tolist() == [49.0, 48.0, 47.0]
    assert run.epochs.tolist() == [1.0, 2.0, 2.5]  # the last epoch stopped halfway (max_steps)


def test_a_fresh_run_drops_old_rows_and_a_resumed_one_keeps_the_epochs_it_does_not_redo(tmp_path):
    _write(tmp_path, [_row(1), _row(2), _row(3)])
    rundir.start_metrics(tmp_path, 1)  # resumed inside the second epoch (0-based 1): epoch 2 is redone
    assert [json.loads(x)["epoch"] for x in (tmp_path / rundir.METRICS).read_text().splitlines()] == [1]
    rundir.append_metrics(tmp_path, _row(2, lr=0.5))
    assert rundir.load_run(tmp_path).rows[-1]["lr"] == 0.5
    rundir.start_metrics(tmp_path, None)
    assert not (tmp_path / rundir.METRICS).exists()
    with pytest.raises(ConfigError, match=r"no metrics\.jsonl"):
        rundir.load_run(tmp_path)
