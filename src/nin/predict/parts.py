"""The journal of a run in progress: one part file per batch, published atomically, merged at the end.

Why part files rather than appending to ``--out``: each batch is written to a temp sibling, flushed, fsynced and
renamed into place, so a part either exists whole or not at all. A SIGKILL (or a power cut) loses at most the
batch in flight and can never leave a torn row where ``--resume`` would read it; an appended file would need a
footer or row check to find its last good row, and Parquet cannot be appended to at all. Under torchrun
every rank writes its own parts with no locking, and the final merge is the same for one process or many.

Layout of ``OUT.parts/``: ``meta.json`` (the columns and the model, so a resume cannot mix layouts or
models) and ``RUN-RANK-CHUNK.jsonl`` files, one JSON record per line with the input index under ``"i"``.
Within one (run, rank) the chunk numbers, and so the indices, increase; the merge interleaves those streams
by index, which restores input order whatever the number of ranks or resumes.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from nin.atomic import fsync_dir, write_bytes
from nin.errors import ConfigError
from nin.predict.rows import Columns

log = logging.getLogger(__name__)

INDEX_KEY = "i"
META = "meta.json"


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def part_name(run: int, rank: int, chunk: int) -> str:
    return f"{run:04d}-{rank:04d}-{chunk:010d}.jsonl"


def write_part(folder: Path, run: int, rank: int, chunk: int, records: Iterable[tuple[int, dict]]) -> None:
    """Publish one batch's records (``(input index, record)`` pairs) as a part file."""
    lines = [json.dumps({INDEX_KEY: i, **rec}, ensure_ascii=False) + "\n" for i, rec in records]
    write_bytes(folder / part_name(run, rank, chunk), "".join(lines).encode("utf-8", "surrogateescape"))


def list_parts(folder: Path) -> dict[tuple[int, int], list[Path]]:
    """Published parts grouped by (run, rank), each group in chunk order; unfinished ``.tmp`` files are ignored."""
    groups: dict[tuple[int, int], list[Path]] = {}
    if not folder.is_dir():
        return groups
    for p in folder.iterdir():
        bits = p.name.removesuffix(".jsonl").split("-")
        if p.suffix != ".jsonl" or len(bits) != 3 or not all(b.isdigit() for b in bits):
            continue
        groups.setdefault((int(bits[0]), int(bits[1])), []).append(p)
    for paths in groups.values():
        paths.sort()
    return dict(sorted(groups.items()))


def read_part(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            yield json.loads(line)


def remove_unfinished(folder: Path) -> None:
    """Delete the ``.tmp`` files a killed run left behind (they never counted as written)."""
    for p in folder.glob("*.tmp"):
        p.unlink(missing_ok=True)


def next_run(folder: Path) -> int:
    runs = [run for run, _ in list_parts(folder)]
    return max(runs, default=0) + 1


def write_meta(folder: Path, columns: Columns, model: str) -> None:
    data = json.dumps({"columns": columns.names, "model": model}, indent=1) + "\n"
    write_bytes(folder / META, data.encode())
    fsync_dir(folder)


def drop_damaged(folder: Path) -> int:
    """Delete parts that do not read back whole (only damage from outside can make one); returns how many.

    Their files are simply predicted again: a part is a cache of finished work, never the only copy of it.
    """
    dropped = 0
    for paths in list_parts(folder).values():
        for part in paths:
            try:
                rows = list(read_part(part))
                ok = bool(rows) and all(INDEX_KEY in r and "path" in r and "error" in r for r in rows)
            except (ValueError, UnicodeError):
                ok = False
            if not ok:
                log.warning("%s is damaged; its files will be predicted again", part)
                part.unlink(missing_ok=True)
                dropped += 1
    return dropped


def check_meta(folder: Path, columns: Columns, model: str) -> None:
    """Refuse to resume a journal written with other columns (``--top-k``, ``--cam-box``) or another model."""
    meta_path = folder / META
    if not meta_path.is_file():
        return
    meta = json.loads(meta_path.read_text())
    if meta.get("columns") != columns.names:
        was = Columns.from_names(meta["columns"])
        raise ConfigError(
            f"the unfinished run in {folder} used --top-k {was.top_k}{' --cam-box' if was.cam_box else ''}; "
            "resume it with the same options"
        )
    if meta.get("model") != model:
        raise ConfigError(
            f"the unfinished run in {folder} was made with another model; resume it with that model, "
            "or choose another --out"
        )


def path_key(path: str) -> int:
    """A 64-bit hash of a path: 8 bytes per row remembered, where the string would take ~100."""
    digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


class DoneSet:
    """The paths already written, as a sorted array of 64-bit hashes (8 MB per million rows)."""

    def __init__(self, paths: Iterable[str] = ()) -> None:
        self._keys = np.unique(np.fromiter((path_key(p) for p in paths), dtype=np.int64))

    def __len__(self) -> int:
        return int(self._keys.size)

    def __contains__(self, path: str) -> bool:
        if not self._keys.size:
            return False
        k = path_key(path)
        i = int(np.searchsorted(self._keys, k))
        return i < self._keys.size and int(self._keys[i]) == k


def journal_key(index: int, path: str) -> str:
    """What the journal remembers of a row: its place in the input and its path (an input may repeat a path)."""
    return f"{index}\0{path}"


def journal_keys(folder: Path) -> Iterator[str]:
    """:func:`journal_key` of every row in the journal's parts."""
    for paths in list_parts(folder).values():
        for part in paths:
            for rec in read_part(part):
                yield journal_key(rec[INDEX_KEY], rec["path"])


def merged_records(folder: Path, base: Iterable[dict] = (), base_done: DoneSet | None = None) -> Iterator[dict]:
    """``base`` (the rows of an ``--out`` being resumed), then every part's rows in input order, without ``"i"``.

    Part rows whose path is already in ``base_done`` are dropped: they are left over from a merge that was
    stopped after publishing ``--out`` and before removing the journal.
    """
    yield from base
    streams = [(r for part in paths for r in read_part(part)) for paths in list_parts(folder).values()]
    for rec in heapq.merge(*streams, key=lambda r: r[INDEX_KEY]):
        rec.pop(INDEX_KEY)
        if base_done is None or rec["path"] not in base_done:
            yield rec


def remove_journal(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
