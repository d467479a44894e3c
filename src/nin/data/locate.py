"""Finding dataset files on disk and verifying them against the official md5s.

Every problem a user can have with a file gets its own message that says what to do: missing (where to
put which file, or the fetch command), truncated (bytes found vs published), wrong checksum, unreadable.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from nin.data.sources import (
    ArchiveSpec,
    FileSpec,
    Source,
    data_root,
    dataset_dir,
    human_size,
    search_dirs,
)
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


def fetch_command(source: Source, root: str | os.PathLike | None) -> str:
    return f"nin data fetch {source.name}" + (f" --root {root}" if root else "")


def _redo(source: Source, root) -> str:
    return f"delete it and run `{fetch_command(source, root)}` (or download it again by hand)"


def truncated_error(path: Path, have: int, want: int, source: Source, root) -> DataError:
    return DataError(
        f"{path} is truncated or not the official file: {have:,} bytes where the official one has {want:,} "
        f"(an interrupted download?); {_redo(source, root)}"
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
        raise DataError(f"{path} is empty (0 bytes); {_redo(source, root)}")
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
                    f"{path} is truncated (the gzip stream ends early, {size:,} bytes); {_redo(source, root)}"
                ) from None
            except (OSError, zlib.error):
                raise DataError(f"{path} is not a gzip file (corrupt or foreign); {_redo(source, root)}") from None
            if content == spec.raw_md5:
                return "content md5 ok (re-compressed copy)"
        if spec.size and size < spec.size:
            raise truncated_error(path, size, spec.size, source, root)
        raise DataError(
            f"{path} has md5 {got}, not the official {spec.md5}: it is damaged or not the official "
            f"{spec.name}; {_redo(source, root)}"
        )
    # the decompressed form of a .gz file
    if spec.raw_md5 is None:
        if spec.raw_size and size < spec.raw_size:
            raise truncated_error(path, size, spec.raw_size, source, root)
        return "no md5 published for the decompressed file (structure checked when read)"
    got = digest.raw()
    if got == spec.raw_md5:
        return "md5 ok (decompressed)"
    if spec.raw_size and size < spec.raw_size:
        raise truncated_error(path, size, spec.raw_size, source, root)
    raise DataError(
        f"{path} has md5 {got}, not the official {spec.raw_md5} of the decompressed {spec.name}: "
        f"it is damaged or a different file; {_redo(source, root)}"
    )


def check_bytes(data: bytes, where: str, spec: FileSpec, source: Source, root=None) -> None:
    """Verify a member read from an archive or an extracted folder (md5 where published, else exact size)."""
    if spec.md5 is not None:
        got = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if got != spec.md5:
            raise DataError(
                f"{where} has md5 {got}, not the official {spec.md5}: it is damaged or not the official file; "
                f"{_redo(source, root)}"
            )
    elif spec.size is not None and len(data) != spec.size:
        if len(data) < spec.size:
            raise DataError(f"{where} is truncated ({len(data):,} of {spec.size:,} bytes); {_redo(source, root)}")
        raise DataError(f"{where} has {len(data):,} bytes, not the official {spec.size:,}; {_redo(source, root)}")


def _candidates(spec: FileSpec) -> list[str]:
    names = [spec.name]
    if spec.raw_name:
        names.append(spec.raw_name)
        # Some unzip tools write "train-images.idx3-ubyte".
        head, sep, tail = spec.raw_name.rpartition("-idx")
        if sep:
            names.append(f"{head}.idx{tail}")
    return names


def find_file(source: Source, spec: FileSpec, root=None) -> Path | None:
    """The first existing copy of ``spec`` (published or decompressed form) in the search folders."""
    for d in search_dirs(source, root):
        for n in _candidates(spec):
            p = d / n
            if p.is_file():
                return p
    return None


def require_files(source: Source, names, root=None) -> dict[str, Path]:
    """The copies of the files ``names`` of ``source``; one error naming every missing file and what to do."""
    paths = {n: find_file(source, source.file(n), root) for n in names}
    missing = [n for n, p in paths.items() if p is None]
    if missing:
        raise missing_error(source, root, missing)
    return paths  # type: ignore[return-value]


@dataclass(frozen=True)
class FoundArchive:
    archive: ArchiveSpec
    path: Path  # the .tar.gz, or the extracted folder
    extracted: bool


def find_archive(source: Source, root=None) -> FoundArchive | None:
    """An extracted folder (preferred: no decompression) or a downloaded archive of ``source``."""
    dirs = search_dirs(source, root)
    for a in source.archives:
        for d in dirs:
            for p in (d / a.folder, d):
                if p.name == a.folder and p.is_dir():
                    return FoundArchive(a, p, True)
    for a in source.archives:
        for d in dirs:
            if (d / a.file.name).is_file():
                return FoundArchive(a, d / a.file.name, False)
    return None


def read_members(found: FoundArchive, names: tuple[str, ...], source: Source, root=None) -> dict[str, bytes]:
    """The bytes of ``names`` from an extracted folder or straight from the ``.tar.gz``, each verified."""
    a = found.archive
    out: dict[str, bytes] = {}
    if found.extracted:
        for n in names:
            p = found.path / n
            if not p.is_file():
                raise DataError(
                    f"{p} is missing: the folder {found.path} is incomplete; delete the folder and unpack "
                    f"{a.file.name} again, or run `{fetch_command(source, root)}`"
                )
            out[n] = p.read_bytes()
            check_bytes(out[n], str(p), a.member(n), source, root)
        return out
    data, _ = read_checked(found.path, a.file, source, root)
    wanted = {f"{a.folder}/{n}": n for n in names}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for m in tar:
                if m.name in wanted and m.isfile():
                    f = tar.extractfile(m)
                    assert f is not None
                    out[wanted[m.name]] = f.read()
                    if len(out) == len(wanted):
                        break
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{found.path} cannot be read as a .tar.gz ({exc}); {_redo(source, root)}") from None
    for n in names:
        if n not in out:
            raise DataError(f"{found.path} has no member {a.folder}/{n}: it is not the official {a.file.name}")
        check_bytes(out[n], f"{found.path}:{a.folder}/{n}", a.member(n), source, root)
    return out


def missing_error(source: Source, root, what: list[str]) -> DataError:
    """One line: what is missing, where it was looked for, and the two ways to get it."""
    dest = dataset_dir(source, root)
    looked = ", ".join(str(d) for d in search_dirs(source, root))
    if source.archives:
        a = source.archives[0].file
        manual = f"{a.urls[0]} (md5 {a.md5}) unchanged, or the folder it unpacks to,"
    else:
        need = [f for f in source.files if f.name in what] or list(source.files)
        manual = ", ".join(f"{f.urls[0]} (md5 {f.md5})" for f in need)
    return DataError(
        f"{source.title} not found: {', '.join(what)} missing (looked in {looked}). Run "
        f"`{fetch_command(source, root)}`, or offline download {manual} into {dest}/; "
        f"`nin data info {source.name}` checks what is there"
    )


def manual_files(source: Source) -> list[FileSpec]:
    return [a.file for a in source.archives] if source.archives else list(source.files)


def inspect(source: Source, root=None, check: bool = True) -> dict:
    """What ``nin data info`` shows: files found, sizes, checksum verdicts, usable splits, what to do.

    ``check=False`` only looks for the files (fast; used to decide whether a reproduction row can run).
    """
    files: list[dict] = []
    usable: dict[str, bool] = {}
    if source.archives:
        found = find_archive(source, root)
        if found is None:
            files.append({"name": " or ".join(a.file.name for a in source.archives), "status": "missing"})
            usable = dict.fromkeys(source.split_files, False)
        else:
            a = found.archive
            entry = {"name": found.path.name, "path": str(found.path), "status": "ok", "variant": a.kind}
            files.append(entry)
            ok_members: set[str] = set()
            if found.extracted:
                entry["size"] = sum(p.stat().st_size for p in found.path.iterdir() if p.is_file())
                for m in a.members:
                    p = found.path / m.name
                    row = {"name": f"{a.folder}/{m.name}", "path": str(p), "status": "ok"}
                    if not p.is_file():
                        row["status"] = "missing"
                    else:
                        row["size"] = p.stat().st_size
                        if check:
                            try:
                                check_bytes(p.read_bytes(), str(p), m, source, root)
                                row["detail"] = "md5 ok" if m.md5 else "size ok (no md5 published)"
                            except DataError as exc:
                                row.update(status="bad", detail=str(exc))
                    if row["status"] == "ok":
                        ok_members.add(m.name)
                    files.append(row)
                entry["status"] = "ok" if len(ok_members) == len(a.members) else "incomplete"
            else:
                entry["size"] = found.path.stat().st_size
                if check:
                    try:
                        entry["detail"] = check_file(found.path, a.file, source, root)
                    except DataError as exc:
                        entry.update(status="bad", detail=str(exc))
                if entry["status"] == "ok":
                    ok_members = {m.name for m in a.members}
            usable = {s: all(n in ok_members for n in need) for s, need in source.split_files.items()}
    else:
        ok_files: set[str] = set()
        for spec in source.files:
            p = find_file(source, spec, root)
            row: dict = {"name": spec.name, "status": "missing"}
            if p is not None:
                row.update(name=p.name, path=str(p), size=p.stat().st_size, status="ok")
                if check:
                    try:
                        row["detail"] = check_file(p, spec, source, root)
                    except DataError as exc:
                        row.update(status="bad", detail=str(exc))
            if row["status"] == "ok":
                ok_files.add(spec.name)
            files.append(row)
        usable = {s: all(n in ok_files for n in need) for s, need in source.split_files.items()}
    return {
        "dataset": source.name,
        "title": source.title,
        "root": str(data_root(root)),
        "dir": str(dataset_dir(source, root)),
        "searched": [str(d) for d in search_dirs(source, root)],
        "files": files,
        "splits": usable,
        "ready": bool(usable) and all(usable.values()),
        "checked": check,
        "fetch": fetch_command(source, root),
        "manual": [
            {
                "name": f.name,
                "url": f.urls[0] if f.urls else None,
                "md5": f.md5,
                "size": f.size,
                "human": human_size(f.size),
            }
            for f in manual_files(source)
        ],
        "note": source.note,
    }
