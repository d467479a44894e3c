"""Result tables on disk: CSV, JSON lines and Parquet (with pyarrow), written as a stream and read back typed.

All three hold the same flat columns (:class:`nin.predict.rows.Columns`). Empty numbers are an empty CSV
field, JSON ``null`` and a Parquet null. File names that are not valid UTF-8 (Linux allows any bytes) are
written as their original bytes in CSV and JSON lines, so they read back as the same path.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from nin.errors import ConfigError, DataError
from nin.predict.rows import Columns

FORMATS: dict[str, str] = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
_ROW_GROUP = 65_536  # Parquet rows per row group: large enough to compress well, small enough to stream


def output_format(path: str | Path) -> str:
    """``csv`` | ``jsonl`` | ``parquet`` from the file's suffix, or a one-line error listing them."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(f"--out {path}: write results to a .csv, .jsonl or .parquet file")
    if fmt == "parquet":
        _pyarrow()
    return fmt


def _pyarrow():
    from nin.extras import require

    pa = require("pyarrow", "a .parquet results file")
    return pa, require("pyarrow.parquet", "a .parquet results file", package="pyarrow")


def _open_text(path: Path, mode: str):
    return path.open(mode, encoding="utf-8", errors="surrogateescape", newline="")


def write_table(
    target: str | Path | BinaryIO, columns: Columns, records: Iterable[dict], fmt: str | None = None
) -> int:
    """Write ``records`` (dicts in ``columns``' layout) to ``target``; returns the number of rows.

    ``target`` is a path (``fmt`` defaults to its suffix's format) or a binary file open for writing (``fmt``
    required), such as :func:`nin.atomic.atomic_open` gives to publish a finished file by renaming it.
    """
    if isinstance(target, (str, Path)):
        with Path(target).open("wb") as f:
            return write_table(f, columns, records, fmt or output_format(target))
    if fmt is None:
        raise ValueError("write_table into an open file needs fmt")
    if fmt == "parquet":
        return _write_parquet(target, columns, records)
    n = 0
    f = io.TextIOWrapper(target, encoding="utf-8", errors="surrogateescape", newline="")
    try:
        if fmt == "csv":
            w = csv.writer(f, lineterminator="\n")
            w.writerow(columns.names)
            for rec in records:
                w.writerow(["" if rec[c] is None else rec[c] for c in columns.names])
                n += 1
        else:
            for rec in records:
                f.write(json.dumps({c: rec[c] for c in columns.names}, ensure_ascii=False) + "\n")
                n += 1
        f.flush()
    finally:
        f.detach()  # the binary file stays open: its owner closes (and publishes) it
    return n


def _parquet_schema(columns: Columns):
    pa, _ = _pyarrow()
    types = {"str": pa.string(), "float": pa.float64(), "int": pa.int64()}
    return pa.schema([(c, types[columns.kind(c)]) for c in columns.names])


def _write_parquet(target: BinaryIO, columns: Columns, records: Iterable[dict]) -> int:
    pa, pq = _pyarrow()
    schema = _parquet_schema(columns)
    n = 0
    with pq.ParquetWriter(target, schema) as writer:
        block: list[dict] = []
        for rec in records:
            block.append(rec)
            if len(block) == _ROW_GROUP:
                writer.write_table(pa.Table.from_pylist(block, schema=schema))
                n, block = n + len(block), []
        if block or n == 0:
            writer.write_table(pa.Table.from_pylist(block, schema=schema))
            n += len(block)
    return n


def _typed(columns: Columns, row: list[str]) -> dict:
    rec = {}
    for name, text in zip(columns.names, row):
        kind = columns.kind(name)
        rec[name] = text if kind == "str" else (None if text == "" else (float(text) if kind == "float" else int(text)))
    return rec


def read_table(path: str | Path) -> tuple[Columns | None, Iterator[dict]]:
    """The column layout (``None`` for an empty JSON-lines file) and a stream of typed records."""
    path = Path(path)
    fmt = output_format(path)
    try:
        if fmt == "parquet":
            _, pq = _pyarrow()
            pf = pq.ParquetFile(path)
            columns = Columns.from_names(pf.schema_arrow.names)
            return columns, (rec for batch in pf.iter_batches() for rec in batch.to_pylist())
        if fmt == "csv":
            return _read_csv(path)
        return _read_jsonl(path)
    except (ValueError, OSError, KeyError) as exc:
        raise DataError(f"{path} is not a results file written by `nin predict` ({exc}); pick another --out") from None


def _read_csv(path: Path) -> tuple[Columns, Iterator[dict]]:
    with _open_text(path, "r") as f:
        header = next(csv.reader(f), None)
    if header is None:
        raise ValueError("empty file")
    columns = Columns.from_names(header)

    def rows() -> Iterator[dict]:
        with _open_text(path, "r") as f:
            reader = csv.reader(f)
            next(reader)
            for row in reader:
                if len(row) != len(header):
                    raise DataError(f"{path}: a row has {len(row)} fields, the header {len(header)}")
                yield _typed(columns, row)

    return columns, rows()


def _read_jsonl(path: Path) -> tuple[Columns | None, Iterator[dict]]:
    with _open_text(path, "r") as f:
        first = f.readline()
    columns = Columns.from_names(list(json.loads(first))) if first.strip() else None

    def rows() -> Iterator[dict]:
        with _open_text(path, "r") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    return columns, rows()
