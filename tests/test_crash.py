"""Crash safety: kill -9 a training process at random instants, resume, and get the uninterrupted weights."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nin.train.checkpoint import load_checkpoint, save_checkpoint

ARGS = [
    "--config",
    "smoke",
    "--no-progress",
    "--set",
    "max_steps=16",
    "checkpoint_every=1",
    "batch_size=16",
    "dropout=0.5",
]


def _train(out: Path, resume: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "nin", "train", "--out", str(out), *ARGS, *(["--resume"] if resume else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def _weights(path: Path) -> dict:
    return load_checkpoint(path)["state_dict"]


def _saved_generation(path: Path) -> tuple[int, int] | None:
    """Identity of the checkpoint file now at ``path`` (each atomic save renames a new file into place)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _kill_after_saves(p: subprocess.Popen, last: Path, saves: int, extra_s: float) -> bool:
    """SIGKILL ``p`` once ``saves`` new checkpoints have appeared, plus ``extra_s``; False if it finished first.

    Progress is observed on disk, not on a clock, so the test means the same on a fast and a slow machine.
    """
    seen = {_saved_generation(last)}
    while len(seen) <= saves:
        if p.poll() is not None:
            return False
        seen.add(_saved_generation(last))
        time.sleep(0.002)
    time.sleep(extra_s)  # somewhere in the next step, or in the middle of the next checkpoint write
    if p.poll() is not None:
        return False
    p.send_signal(signal.SIGKILL)
    p.wait()
    return True


@pytest.mark.slow
def test_kill9_at_random_points_then_resume_is_bit_identical(tmp_path):
    ref = _train(tmp_path / "ref", resume=False)
    assert ref.wait(timeout=600) == 0, ref.stderr.read().decode()

    rng = random.Random(1234)
    out = tmp_path / "crashy"
    kills = 0
    for attempt in range(12):
        p = _train(out, resume=attempt > 0)
        if _kill_after_saves(p, out / "last.pt", saves=rng.randint(1, 3), extra_s=rng.uniform(0.0, 0.05)):
            kills += 1
            continue
        assert p.wait() == 0, p.stderr.read().decode()
        break
    else:  # still not finished: let the last resume run to the end
        p = _train(out, resume=True)
        assert p.wait(timeout=600) == 0, p.stderr.read().decode()
    assert kills >= 2, "the run finished before it could be killed; make it longer"
    a, b = _weights(tmp_path / "ref" / "last.pt"), _weights(out / "last.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # temp files of writes that were killed are swept when a run resumes
    assert not list(out.glob(".*.tmp"))


def test_failed_write_leaves_old_checkpoint_and_no_temp(tmp_path, monkeypatch):
    save_checkpoint({"v": torch.ones(3)}, tmp_path / "c.pt")

    real_save = torch.save

    def dying_save(obj, f, *a, **k):
        f.write(b"partial bytes")  # the crash happens mid-write
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"v": torch.zeros(3)}, tmp_path / "c.pt")
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.equal(torch.load(tmp_path / "c.pt", weights_only=True)["v"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_kill_during_a_checkpoint_write_keeps_a_loadable_file(tmp_path):
    """A process killed while writing a large checkpoint leaves the previous file intact."""
    target = tmp_path / "big.pt"
    save_checkpoint({"gen": 0, "w": torch.zeros(4)}, target)
    code = (
        "import sys, torch\n"
        "from nin.train.checkpoint import save_checkpoint\n"
        "big = {'gen': 1, 'w': torch.randn(16, 1024, 1024)}\n"  # 64 MB: the write takes a while
        "print('go', flush=True)\n"
        f"save_checkpoint(big, {str(target)!r})\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"go"
    time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    got = torch.load(target, weights_only=True)
    assert got["gen"] in (0, 1)  # old or new, never half
    if got["gen"] == 0:
        assert torch.equal(got["w"], torch.zeros(4))
