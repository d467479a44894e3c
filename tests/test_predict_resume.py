"""Resume after a real `kill -9`, and 2 torchrun processes over gloo: both give the file of one plain run.

Every run here is a subprocess with one compute thread, so all of them compute each batch the same way and
the files can be compared byte for byte.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _predict import nin_cmd, write_broken, write_digits
from fixtures.serve.builders import save_ckpt

BATCH = 8
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
OPTS = ["--batch-size", str(BATCH), "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    ckpt = save_ckpt(root / "m.pt")
    paths = write_digits(root / "imgs", 94, mixed=True) + write_broken(root / "imgs" / "zz")
    listing = root / "list.txt"
    listing.write_text("".join(f"{p}\n" for p in paths))
    return root, str(ckpt), [str(p) for p in paths], listing


def _run(*args, code=1):
    done = subprocess.run(nin_cmd("predict", *args), env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == code, done.stderr[-3000:]
    return done


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while the folder was read
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _published(parts):
    return sorted(parts.glob("*.jsonl")) if parts.is_dir() else []


def test_resume_after_kill_9_gives_the_uninterrupted_file(setup, tmp_path):
    _root, ckpt, paths, listing = setup
    reference = tmp_path / "reference.csv"
    _run(ckpt, f"@{listing}", "--out", str(reference), "--workers", "1", *OPTS)

    # The killed run reads its list from a pipe that is never closed, so it cannot finish before the kill:
    # the kill comes once rows are seen on disk, whatever the speed of the machine.
    fifo = tmp_path / "paths.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "preds.csv"
    parts = tmp_path / "preds.csv.parts"
    proc = subprocess.Popen(
        nin_cmd("predict", ckpt, f"@{fifo}", "--out", str(out), "--workers", "1", *OPTS),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with open(fifo, "w") as w:
            w.write("".join(f"{p}\n" for p in paths[: 9 * BATCH + 1]))  # 9 whole batches can be formed
            w.flush()
            deadline = time.monotonic() + 300  # a guard against a hang, not a timing
            while len(_published(parts)) < 3 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert len(_published(parts)) >= 3, "no rows reached the disk"
            workers = _children(proc.pid)
            assert workers, "the run has a decoding process"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(60)
            # Its decoding process must not outlive it (blocked on a queue nobody writes to, holding memory).
            while any(_alive(w) for w in workers) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not any(_alive(w) for w in workers), "a decoding process outlived the killed run"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(60)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    written = [json.loads(line) for part in _published(parts) for line in part.read_text().splitlines()]
    assert len(written) == BATCH * len(_published(parts))  # whole batches only, every line a complete row
    assert [r["path"] for r in written] == paths[: len(written)]

    resumed = _run(ckpt, f"@{listing}", "--out", str(out), "--resume", "--workers", "1", *OPTS)
    assert f"{len(written)} already there" in resumed.stderr
    assert out.read_bytes() == reference.read_bytes()
    assert not parts.exists()


@pytest.mark.slow
def test_two_gloo_processes_under_torchrun_write_the_single_process_file(setup, tmp_path):
    root, ckpt, paths, _listing = setup
    single = tmp_path / "one.jsonl"
    _run(ckpt, str(root / "imgs"), "--out", str(single), "--workers", "0", *OPTS)
    ddp = tmp_path / "ddp.jsonl"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "nin", "predict", ckpt, str(root / "imgs"), "--out", str(ddp), "--workers", "1", *OPTS]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "(rank 0 of 2)" in done.stderr, done.stderr[-3000:]  # 2 error rows: exit 1
    assert ddp.read_bytes() == single.read_bytes()
    assert len(ddp.read_text().splitlines()) == len(paths)
