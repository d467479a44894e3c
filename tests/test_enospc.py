"""A full disk while `nin train` writes a checkpoint or `nin predict` writes its parts: the previous file stays
as it was, and the command says so in one line and exits non-zero.

The fault is a real OSError(ENOSPC) from the file the atomic writer writes into (nin.atomic's view of `os`
is replaced for the run: its `fdopen` hands out a file whose writes fail as a full disk's do). Before this
change both commands died with a traceback: `nin train`'s torch.save turned the OSError into an opaque
RuntimeError ("unexpected pos ..."), `nin predict` printed the OSError's traceback.
"""

import errno
import io
import os
import types

import pytest

import nin.atomic
from _predict import write_digits
from fixtures.serve.builders import save_ckpt
from nin.cli import main


class _FullDisk(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def full_disk(monkeypatch):
    """From now on every atomic write meets a full disk."""

    def fdopen(fd, mode="r", *args, **kw):
        os.close(fd)
        return io.BufferedWriter(_FullDisk())

    fake_os = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
    fake_os.fdopen = fdopen

    def on():
        monkeypatch.setattr(nin.atomic, "os", fake_os)

    return on


def _one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_train_on_a_full_disk_keeps_the_last_checkpoint(tmp_path, capsys, full_disk):
    out = tmp_path / "run"
    base = ["train", "--config", "smoke", "--out", str(out), "--no-progress"]
    assert main([*base, "--set", "max_steps=2"]) == 0
    last = out / "last.pt"
    before = last.read_bytes()
    capsys.readouterr()
    full_disk()
    code = main([*base, "--resume", "--set", "max_steps=4"])
    line = _one_line_error(capsys.readouterr().err)
    assert code != 0
    assert "no space left on the device" in line and "last.pt" in line and "kept unchanged" in line
    assert last.read_bytes() == before
    assert not list(out.glob(".*.tmp"))  # no half-written temp file left behind


def test_predict_on_a_full_disk_keeps_the_previous_output(tmp_path, capsys, full_disk):
    ckpt = save_ckpt(tmp_path / "m.pt")
    images = [str(p) for p in write_digits(tmp_path / "imgs", 6)]
    out = tmp_path / "preds.csv"
    opts = ["--out", str(out), "--batch-size", "4", "--no-progress"]
    assert main(["predict", str(ckpt), *images, *opts]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    full_disk()
    code = main(["predict", str(ckpt), *images, *opts, "--overwrite"])
    line = _one_line_error(capsys.readouterr().err)
    assert code != 0 and "no space left on the device" in line
    assert out.read_bytes() == before


def test_any_full_disk_error_is_one_line(monkeypatch, capsys):
    """A full disk met outside the atomic writer (a log, a metrics file) is one line too, not a traceback."""
    import nin.cli.list_cmd

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/metrics.jsonl")

    monkeypatch.setattr(nin.cli.list_cmd, "run", full)
    assert main(["list"]) == 1
    line = _one_line_error(capsys.readouterr().err)
    assert (
        line
        == "nin list: error: no space left on the device while writing runs/x/metrics.jsonl; free space and run again"
    )
