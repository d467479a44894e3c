"""Atomic file writes: a reader, or a crash at any instant, sees the old file or the new one, never half of one.

The data goes to a unique sibling temp file (``.NAME.XXXX.tmp``), which is flushed and fsynced, then renamed over
``NAME``; the folder is fsynced after the rename so the new name survives a power cut too. A full disk (ENOSPC,
EDQUOT) leaves ``NAME`` as it was and raises :class:`DiskFullError`, one line that says so. Checkpoints, the
reproduction report and the part files of batch prediction all write this way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from nin.errors import NinError

FULL_DISK = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFullError(NinError, OSError):
    """The disk (or the quota) filled up during an atomic write; the file being replaced is unchanged."""

    exit_code = 1

    def __str__(self) -> str:
        return str(self.strerror)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make the folder's entries (a rename) durable; a no-op where the OS cannot open folders."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, keep_previous: Path | None = None) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content into; it replaces ``path`` when the block ends without error.

    Args:
        path: the file to (re)write; its folder is created if needed.
        keep_previous: move the file ``path`` held before to this name (one generation of backup).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, DiskFullError) and exc.errno in FULL_DISK:
            kept = "its previous version is kept unchanged" if path.exists() else "nothing was written"
            raise DiskFullError(
                exc.errno, f"no space left on the device while writing {path}; {kept}. Free space and run again"
            ) from None
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path) as f:
        f.write(data)
    return Path(path)
