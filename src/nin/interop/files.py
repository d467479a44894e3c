"""Reading a user's weight file with clear errors, and describing it for the checkpoint's provenance."""

from __future__ import annotations

import hashlib
from pathlib import Path

from nin.errors import DataError


def read_file(path: str | Path, what: str) -> bytes:
    """All bytes of ``path``; a missing or empty file raises :class:`DataError` saying so."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist (or is not a file); check the path")
    data = path.read_bytes()
    if not data:
        raise DataError(f"{what} {path} is empty (0 bytes); download it again")
    return data


def provenance(path: str | Path, data: bytes) -> dict:
    """Plain-typed description of a source file (name, size, md5), recorded in the imported checkpoint."""
    return {"file": Path(path).name, "bytes": len(data), "md5": hashlib.md5(data).hexdigest()}
