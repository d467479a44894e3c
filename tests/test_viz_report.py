import base64
import json
import re
import shutil
import sys

import numpy as np
import pytest

from nin.cli import main
from nin.data.preprocess import preprocessor_from_state
from nin.data.registry import load_dataset
from nin.errors import ConfigError
from nin.train import build_from_checkpoint, evaluate, load_checkpoint, train
from nin.train.rundir import load_run
from nin.viz.confusion import confusion_figure, most_confused
from nin.viz.curves import curves_figures
from nin.viz.report import build_report
from nin.viz.report_data import fmt_duration
from nin.viz.tensorboard import TensorBoardLogger
from test_viz_support import CPU32, png_size, tiny_cfg, tiny_data, trained_run

PLOTS = ("loss", "error", "lr", "throughput", "confusion")


def _write_run(path, rows, config=None):
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta = {"config": config or {"name": "hand", "batch_size": 10, "schedule": "step", "lr": 0.1, "epochs": 5}}
    meta["train_size"] = 100
    (path / "config.json").write_text(json.dumps(meta))
    return path


def _rows(n=5):
    return [
        {
            "epoch": e,
            "step": 10 * e,
            "lr": 0.1 if e < 4 else 0.01,
            "train_loss": 2.0 / e,
            "train_error_pct": 60.0 / e,
            "test_loss": 2.2 / e,
            "test_error_pct": 50.0 / e + (3 if e == 5 else 0),
            "test_accuracy": 1 - (50.0 / e) / 100,
            "img_per_s": 1000.0 + e,
            "epoch_time_s": 0.1,
            "wall_time_s": 0.2 * e,
            "complete": True,
            **({"lr_drop": True} if e == 4 else {}),
        }
        for e in range(1, n + 1)
    ]


def test_report_contains_every_plot_and_the_key_numbers(tmp_path_factory):
    run = trained_run(tmp_path_factory)
    res = build_report(run)
    html = res.html.read_text()
    assert res.html == run / "report.html" and res.markdown == run / "report.md"
    for name in PLOTS:
        m = re.search(rf'id="plot-{name}" alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
        assert m, f"plot {name} missing from the HTML"
        w, h = png_size(base64.b64decode(m.group(1)))
        assert w > 200 and h > 150
    assert not re.search(r'(src|href)="(https?:|//)', html)  # self-contained
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert f"{rows[-1]['test_error_pct']:.2f}%" in html
    assert f"{min(r['test_error_pct'] for r in rows):.2f}%" in html
    assert "tiny" in html and "nin_mnist" in html  # title and config
    md = res.markdown.read_text()
    for name in PLOTS:
        assert f"report_plots/{name}.png" in md
        assert png_size((run / "report_plots" / f"{name}.png").read_bytes())[0] > 200
    assert md.count("\n| ") >= len(rows) + 2  # key numbers and one row per epoch


def test_confusion_matrix_agrees_with_the_checkpoint_metrics(tmp_path_factory):
    run = trained_run(tmp_path_factory)
    res = build_report(run, run / "r2" / "out.html")
    cm = res.data.confusion
    ckpt = load_checkpoint(run / "best.pt")
    ds = load_dataset("synthetic_mnist", "test")  # the checkpoint's dataset and test split
    m = evaluate(build_from_checkpoint(ckpt), ds.images, ds.labels, preprocessor_from_state(ckpt["preprocess"]), CPU32)
    assert cm.shape == (10, 10) and cm.sum() == len(ds) == 256
    assert np.trace(cm) / cm.sum() == pytest.approx(m["accuracy"])
    assert (cm.sum(1) == np.bincount(ds.labels.numpy(), minlength=10)).all()  # rows are true classes
    assert "best.pt" in res.data.checkpoint_note
    assert (run / "r2" / "out.md").exists() and (run / "r2" / "out_plots" / "confusion.png").exists()


def test_report_shows_the_paper_number_when_the_config_has_one(tmp_path_factory, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run(tmp_path_factory), run)
    meta = json.loads((run / "config.json").read_text())
    meta["config"].update(paper_error=0.47, paper_ref="Table 4")
    (run / "config.json").write_text(json.dumps(meta))
    res = build_report(run, confusion=False)
    html = res.html.read_text()
    assert "0.47%" in html and "Table 4" in html
    assert "Confusion matrix not computed" in html and 'id="plot-confusion"' not in html


def test_curves_from_a_hand_written_run(tmp_path):
    run = load_run(_write_run(tmp_path / "r", _rows()))
    assert [r["epoch"] for r in run.rows] == [1, 2, 3, 4, 5]
    figs = curves_figures(run, paper_error=8.81)
    assert set(figs) == {"loss", "error", "lr", "throughput"}
    err_ax = figs["error"].axes[0]
    labels = [t.get_text() for t in err_ax.get_legend().get_texts()]
    assert "paper 8.81%" in labels and "best test 12.50%" in labels  # epoch 4: 50/4
    lr_lines = figs["lr"].axes[0].get_lines()
    schedule = lr_lines[0].get_ydata()
    assert schedule.max() == pytest.approx(0.1) and len(schedule) == 50  # replayed from the config, step by step


def test_report_without_checkpoint_still_renders(tmp_path):
    _write_run(tmp_path / "r", _rows(3))
    res = build_report(tmp_path / "r")
    html = res.html.read_text()
    assert "No best.pt or last.pt" in html
    assert html.count('id="plot-') == 4


def test_load_run_errors_and_damaged_last_line(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no metrics\.jsonl"):
        load_run(tmp_path / "empty")
    path = _write_run(tmp_path / "r", _rows(2))
    with (path / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 3, "trai')  # a run killed mid-write
    assert len(load_run(path).rows) == 2


def test_confusion_figure_and_most_confused():
    cm = np.array([[5, 2, 0], [0, 7, 1], [3, 0, 4]])
    fig = confusion_figure(cm, ["a", "b", "c"])
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"5", "2", "7", "1", "3", "4"} <= texts and "0" not in texts
    assert most_confused(cm, ["a", "b", "c"], 2) == [("c", "a", 3), ("a", "b", 2)]
    with pytest.raises(ValueError):
        confusion_figure(cm, ["a", "b"])


def test_fmt_duration():
    assert fmt_duration(42.4) == "42 s"
    assert fmt_duration(192) == "3 min 12 s"
    assert fmt_duration(7500) == "2 h 05 min"


def test_cli_report(tmp_path, capsys):
    _write_run(tmp_path / "r", _rows(2))
    assert main(["report", str(tmp_path / "r"), "-o", str(tmp_path / "x.html"), "--no-confusion"]) == 0
    assert "x.html" in capsys.readouterr().out and (tmp_path / "x.md").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "r"), "-o", str(tmp_path / "x.pdf")]) == 2


def test_tensorboard_events_hold_the_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = _rows(3)
    with TensorBoardLogger(tmp_path / "tb", {"name": "hand"}) as tb:
        for r in rows:
            tb(r)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    test_err = acc.Scalars("error_pct/test")
    assert [e.step for e in test_err] == [r["step"] for r in rows]
    assert [e.value for e in test_err] == pytest.approx([r["test_error_pct"] for r in rows])
    assert {"loss/train", "loss/test", "lr", "throughput/img_per_s"} <= set(acc.Tags()["scalars"])


def test_tensorboard_during_training(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with TensorBoardLogger(tmp_path / "tb") as tb:
        train(
            tiny_cfg(epochs=2, max_steps=3),
            out_dir=tmp_path,
            progress=False,
            data=tiny_data(),
            runtime=CPU32,
            on_epoch=tb,
        )
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert len(acc.Scalars("loss/test")) == 1  # max_steps=3 stops inside the first epoch (6 steps)


def test_tensorboard_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match="pip install"):
        TensorBoardLogger(tmp_path / "tb")


def test_cli_train_tensorboard_flag(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--config", "smoke", "--out", str(out), "--set", "max_steps=1", "--no-progress", "--tensorboard"]
    assert main(argv) == 0
    assert list((out / "tb").glob("events.out.tfevents.*"))
