"""Data-parallel training: batch sharding (fast) and real 2-process gloo runs through torchrun (slow)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from nin.train import distributed, load_checkpoint
from nin.train.batches import EpochBatches
from nin.train.distributed import DistContext, leave, local_slice, shard

# The same run for one process and for two: no dropout and no batch norm, so a 2-rank step computes the
# single-process step exactly (up to float summation order).
SETTINGS = [
    "batch_norm=false",
    "dropout=0",
    "epochs=2",
    "max_steps=5",
    "batch_size=32",
    "translate=1",
    "device=cpu",
    "precision=fp32",
    "channels_last=off",
    "schedule=constant",  # max_steps shortens a decaying schedule; a constant one lets the resume test stop early
]


def test_rank_slices_tile_the_global_batch():
    assert [local_slice(128, DistContext(r, 4)) for r in range(4)] == [
        slice(0, 32),
        slice(32, 64),
        slice(64, 96),
        slice(96, 128),
    ]
    parts = [shard(10, DistContext(r, 3)) for r in range(3)]
    assert [p.stop - p.start for p in parts] == [3, 3, 4] and parts[-1].stop == 10


def test_ranks_see_the_single_process_batch(tiny_data):
    """Each rank's augmented slice is its part of the batch a single process would train on."""
    images, labels = tiny_data[0].images, tiny_data[0].labels
    kw = dict(seed=3, epoch=1, batch_size=16, translate=2, flip=True)
    one = EpochBatches(images, labels, ctx=DistContext(), **kw)
    ranks = [EpochBatches(images, labels, ctx=DistContext(r, 2), ahead=3, **kw) for r in range(2)]
    for s in range(one.steps):
        x, y = one(s)
        parts = [b(s) for b in ranks]
        assert torch.equal(torch.cat([p[0] for p in parts]), x)
        assert torch.equal(torch.cat([p[1] for p in parts]), y)


def test_a_finished_rank_waits_for_its_peers_before_tearing_down(monkeypatch):
    calls = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    owner = DistContext(0, 2, owns_group=True)
    leave(owner, finished=True)
    assert calls == ["barrier", "destroy"]
    calls.clear()
    leave(owner)  # after a failure the peers may be gone: no barrier
    assert calls == ["destroy"]
    calls.clear()
    leave(DistContext(0, 2), finished=True)  # a group someone else made is theirs to destroy
    assert calls == []


def _torchrun(out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "nin", "train", "--config", "smoke", "--out", str(out), "--no-progress", "--set", *SETTINGS]
    done = subprocess.run(cmd + list(extra), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _single(out, *extra):
    from nin.cli import main

    assert main(["train", "--config", "smoke", "--out", str(out), "--no-progress", "--set", *SETTINGS, *extra]) == 0


def _assert_same_weights(a, b):
    wa, wb = load_checkpoint(a)["state_dict"], load_checkpoint(b)["state_dict"]
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    """torchrun, 2 CPU processes over gloo, global batch 32 = 2 x 16: the weights of 1 process x 32."""
    _torchrun(tmp_path / "ddp")
    _single(tmp_path / "one")
    _assert_same_weights(tmp_path / "ddp" / "last.pt", tmp_path / "one" / "last.pt")
    ddp = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    one = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in ddp] == [1]  # rank 0 alone writes: one line per epoch
    assert ddp[0]["train_loss"] == pytest.approx(one[0]["train_loss"], rel=1e-4)
    assert ddp[0]["test_accuracy"] == pytest.approx(one[0]["test_accuracy"], abs=1e-6)
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_two_gloo_processes_resume(tmp_path):
    """Stopped after 2 steps and resumed by torchrun: the same weights as the uninterrupted 1-process run."""
    _torchrun(tmp_path / "ddp", "max_steps=2")
    _torchrun(tmp_path / "ddp", "--resume")  # --set ... max_steps=5 comes first, the later value wins
    _single(tmp_path / "one")
    _assert_same_weights(tmp_path / "ddp" / "last.pt", tmp_path / "one" / "last.pt")
