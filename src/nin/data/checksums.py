"""Verifying dataset files against the official md5s, with a message for every way a file can be wrong.

Truncated (bytes found vs published), wrong checksum, not a gzip stream, empty: each message names the file
and says what to do. md5s of large files are memoised per (path, size, mtime), so a file is hashed once.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

from nin.data.paths import refetch_advice
from nin.data.sources import FileSpec, Source
from nin.errors import DataError

_MD5_MEMO: dict[tuple[str, int, int, bool], str] = {}  # (real path, size, mtime_ns, content) -> md5
_MEMO_MIN_BYTES = 1 << 24


def _memo_key(path: Path, content: bool) -> tuple[str, int, int, bool]:
    st = path.stat()
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns, content)


def _memoised(path: Path, content: bool, compute) -> str:
    key = _memo_key(path, content)
    if key in _MD5_MEMO:
        return _MD5_MEMO[key]
    digest = compute()
    if key[1] >= _MEMO_MIN_BYTES:  # small files rehash in no time; mtimes are too coarse to tell rewrites apart
        _MD5_MEMO[key] = digest
    return digest


def md5_file(path: str | os.PathLike, content: bool = False) -> str:
    """md5 of a file's bytes (``content``: of its gunzipped bytes); memoised per (path, size, mtime).

    Raises ``EOFError`` / ``gzip.BadGzipFile`` / ``zlib.error`` for a damaged ``.gz`` when ``content``.
    """
    path = Path(path)

    def stream() -> str:
        h = hashlib.md5(usedforsecurity=False)
        with (gzip.open if content else open)(path, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
        return h.hexdigest()

    return _memoised(path, content, stream)


def _truncated_error(path: Path, have: int, want: int, source: Source, root) -> DataError:
    return DataError(
        f"{path} is truncated or not the official file: {have:,} bytes where the official one has {want:,} "
        f"(an interrupted download?); {refetch_advice(source, root)}"
    )


class _Digest:
    """The md5 of a file's bytes and of its gunzipped bytes (memoised per file): streamed from disk, or taken
    of bytes already read; :meth:`content` of bytes in memory keeps the gunzipped bytes in ``gunzipped``."""

    def __init__(self, path: Path, data: bytes | None = None):
        self.path, self.data = path, data
        self.gunzipped: bytes | None = None

    @property
    def size(self) -> int:
        return self.path.stat().st_size if self.data is None else len(self.data)

    def raw(self) -> str:
        if self.data is None:
            return md5_file(self.path)
        data = self.data
        return _memoised(self.path, False, lambda: hashlib.md5(data, usedforsecurity=False).hexdigest())

    def content(self) -> str:
        """Raises ``EOFError`` / ``gzip.BadGzipFile`` / ``zlib.error`` for a damaged gzip stream."""
        if self.data is None:
            return md5_file(self.path, content=True)
        data = self.data

        def gunzip_and_hash() -> str:
            self.gunzipped = gzip.decompress(data)
            return hashlib.md5(self.gunzipped, usedforsecurity=False).hexdigest()

        return _memoised(self.path, True, gunzip_and_hash)


def check_file(path: Path, spec: FileSpec, source: Source, root=None) -> str:
    """Verify ``path`` (the published form of ``spec`` or its decompressed form) against the official md5.

    Returns a short status for ``nin data info``; raises :class:`DataError` saying what is wrong.
    """
    return _verdict(_Digest(path), spec, source, root)


# The official files read whole (IDX, CIFAR archives) are at most ~170 MB; anything much larger is not one
# of them and is checked streaming, so a wrong multi-GB file is refused without being loaded.
READ_ONCE_MAX_BYTES = 1 << 29


def read_checked(path: Path, spec: FileSpec, source: Source, root=None) -> tuple[bytes, bytes | None]:
    """Read ``path`` once and verify those bytes as :func:`check_file` does.

    Returns (the file's bytes, their gunzipped form when the check already decompressed them, else None).
    """
    if path.stat().st_size > READ_ONCE_MAX_BYTES:
        check_file(path, spec, source, root)
        return path.read_bytes(), None
    data = path.read_bytes()
    digest = _Digest(path, data)
    _verdict(digest, spec, source, root)
    return data, digest.gunzipped


def _verdict(digest: _Digest, spec: FileSpec, source: Source, root) -> str:
    path, size = digest.path, digest.size
    if size == 0:
        raise DataError(f"{path} is empty (0 bytes); {refetch_advice(source, root)}")
    published = path.name == spec.name
    if published:
        if spec.md5 is None:
            return "no md5 published (structure checked when read)"
        got = digest.raw()
        if got == spec.md5:
            return "md5 ok"
        if spec.raw_md5 and spec.name.endswith(".gz"):
            try:
                content = digest.content()
            except EOFError:
                raise DataError(
                    f"{path} is truncated (the gzip stream ends early, {size:,} bytes); {refetch_advice(source, root)}"
                ) from None
            except (OSError, zlib.error):
                raise DataError(
                    f"{path} is not a gzip file (corrupt or foreign); {refetch_advice(source, root)}"
                ) from None
            if content == spec.raw_md5:
                return "content md5 ok (re-compressed copy)"
        if spec.size and size < spec.size:
            raise _truncated_error(path, size, spec.size, source, root)
        raise DataError(
            f"{path} has md5 {got}, not the official {spec.md5}: it is damaged or not the official "
            f"{spec.name}; {refetch_advice(source, root)}"
        )
    # the decompressed form of a .gz file
    if spec.raw_md5 is None:
        if spec.raw_size and size < spec.raw_size:
            raise _truncated_error(path, size, spec.raw_size, source, root)
        return "no md5 published for the decompressed file (structure checked when read)"
    got = digest.raw()
    if got == spec.raw_md5:
        return "md5 ok (decompressed)"
    if spec.raw_size and size < spec.raw_size:
        raise _truncated_error(path, size, spec.raw_size, source, root)
    raise DataError(
        f"{path} has md5 {got}, not the official {spec.raw_md5} of the decompressed {spec.name}: "
        f"it is damaged or a different file; {refetch_advice(source, root)}"
    )


def check_bytes(data: bytes, where: str, spec: FileSpec, source: Source, root=None) -> None:
    """Verify a member read from an archive or an extracted folder (md5 where published, else exact size)."""
    if spec.md5 is not None:
        got = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if got != spec.md5:
            raise DataError(
                f"{where} has md5 {got}, not the official {spec.md5}: it is damaged or not the official file; "
                f"{refetch_advice(source, root)}"
            )
    elif spec.size is not None and len(data) != spec.size:
        if len(data) < spec.size:
            raise DataError(
                f"{where} is truncated ({len(data):,} of {spec.size:,} bytes); {refetch_advice(source, root)}"
            )
        raise DataError(
            f"{where} has {len(data):,} bytes, not the official {spec.size:,}; {refetch_advice(source, root)}"
        )
