"""Finding dataset files on disk: plain files (published or decompressed), CIFAR archives or their folders.

A file that is not found gets one message: which files are missing, where nin looked, and the two ways to get
them (``nin data fetch``, or by hand from the official URL into the dataset folder).
"""

from __future__ import annotations

import io
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from nin.data.checksums import check_bytes, read_checked
from nin.data.paths import dataset_dir, fetch_command, refetch_advice, search_dirs
from nin.data.sources import ArchiveSpec, FileSpec, Source
from nin.errors import DataError


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
        raise DataError(f"{found.path} cannot be read as a .tar.gz ({exc}); {refetch_advice(source, root)}") from None
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
