"""Reading MXNet's NDArray-list files (``.params``, ``.nd``) without MXNet.

Layout (little-endian; MXNet ``src/ndarray/ndarray.cc``)::

    file    := u64 0x112 | u64 0 | u64 n | NDArray * n | u64 n_keys | (u64 len, bytes) * n_keys
    NDArray := u32 magic, then by magic:
      0xF993FAC9 (V2), 0xF993FACA (V3): i32 stype | shape | context | i32 type_flag | data
      0xF993FAC8 (V1):                  shape | context | i32 type_flag | data
      anything else (legacy):           magic is ndim; u32 dims[ndim] | context | i32 type_flag | data
    shape   := i32 ndim | i64 dims[ndim]      context := i32 dev_type | i32 dev_id

V2 writes ``ndim 0`` for an empty array and V3 (NumPy semantics) ``ndim -1``; in both nothing follows.
Every size is checked against the bytes left before anything is allocated.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from nin.errors import DataError
from nin.interop.files import provenance, read_file

LIST_MAGIC = 0x112
V1_MAGIC, V2_MAGIC, V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
LAYOUTS = {V1_MAGIC: "V1", V2_MAGIC: "V2", V3_MAGIC: "V3"}
DTYPES = {0: "<f4", 1: "<f8", 2: "<f2", 3: "u1", 4: "<i4", 5: "i1", 6: "<i8"}
MAX_NDIM = 32  # MXNet's own limit is far lower; anything above is a corrupt header


class _Cursor:
    def __init__(self, data: bytes, source: str) -> None:
        self.buf = memoryview(data)
        self.pos = 0
        self.source = source
        self.what = "header"

    def left(self) -> int:
        return len(self.buf) - self.pos

    def take(self, n: int) -> memoryview:
        if n < 0 or n > self.left():
            raise DataError(
                f"{self.source} is truncated or corrupt: {self.what} needs {n} bytes but only {self.left()} "
                "remain; download the file again"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def _shape(c: _Cursor, magic: int) -> tuple[int, ...] | None:
    """Read a shape; ``None`` means an empty (never initialised) array."""
    if magic in LAYOUTS:
        (ndim,) = c.unpack("<i")
        if ndim == -1 or (ndim == 0 and magic != V3_MAGIC):
            return None
        if not 0 <= ndim <= MAX_NDIM:
            raise DataError(f"{c.source}: {c.what} claims {ndim} dimensions; the file is corrupt")
        dims = c.unpack(f"<{ndim}q") if ndim else ()
    else:
        ndim = magic  # legacy files start an array with its ndim
        if ndim > MAX_NDIM:
            raise DataError(
                f"{c.source}: {c.what} starts with {ndim:#x}, neither an NDArray magic number nor a "
                "plausible dimension count; the file is corrupt or not an MXNet .params file"
            )
        if ndim == 0:
            return None
        dims = c.unpack(f"<{ndim}I")
    if any(d < 0 for d in dims):
        raise DataError(f"{c.source}: {c.what} has a negative dimension {dims}; the file is corrupt")
    return tuple(int(d) for d in dims)


def _ndarray(c: _Cursor) -> tuple[np.ndarray | None, str]:
    (magic,) = c.unpack("<I")
    layout = LAYOUTS.get(magic, "legacy")
    if magic in (V2_MAGIC, V3_MAGIC):
        (stype,) = c.unpack("<i")
        if stype != 0:
            raise DataError(
                f"{c.source}: {c.what} is a sparse array (storage type {stype}); NIN weights are dense, "
                "so this is not a NIN parameter file"
            )
    shape = _shape(c, magic)
    if shape is None:
        return None, layout
    c.unpack("<ii")  # context (dev_type, dev_id): arrays are always read to the CPU
    (type_flag,) = c.unpack("<i")
    if type_flag not in DTYPES:
        raise DataError(f"{c.source}: {c.what} has unknown element type {type_flag}; the file is corrupt")
    dtype = np.dtype(DTYPES[type_flag])
    count = 1
    for d in shape:  # Python ints: an absurd shape cannot overflow, and is refused by take()
        count *= d
    raw = c.take(count * dtype.itemsize)
    return np.frombuffer(raw, dtype=dtype).reshape(shape), layout


def parse_params(data: bytes, source: str = "params") -> tuple[dict[str, np.ndarray], dict]:
    """Parse an NDArray-list file into ``{key: array}`` (keys as stored, e.g. ``arg:conv1_weight``).

    Returns the arrays and a summary ``{"layouts": [...], "dtypes": [...]}`` of what the file held.
    """
    c = _Cursor(data, source)
    if len(data) < 24:
        raise DataError(f"{source} is too short to be an MXNet .params file ({len(data)} bytes)")
    header, _reserved, n = c.unpack("<QQQ")
    if header != LIST_MAGIC:
        raise DataError(
            f"{source} is not an MXNet NDArray file (header {header:#x}, expected {LIST_MAGIC:#x}); "
            "pass the .params file, not the -symbol.json"
        )
    if n > c.left() // 4:  # every array takes at least its 4-byte magic
        raise DataError(f"{source} claims {n} arrays in {c.left()} bytes; the file is corrupt")
    arrays: list[np.ndarray | None] = []
    layouts: set[str] = set()
    for i in range(n):
        c.what = f"array #{i} (of {n})"
        a, layout = _ndarray(c)
        arrays.append(a)
        layouts.add(layout)
    c.what = "the key list"
    (n_keys,) = c.unpack("<Q")
    if n_keys not in (0, n):
        raise DataError(f"{source} has {n} arrays but {n_keys} names; the file is corrupt")
    keys: list[str] = []
    for i in range(n_keys):
        c.what = f"name #{i}"
        (length,) = c.unpack("<Q")
        keys.append(bytes(c.take(length)).decode("utf-8", "replace"))
    if not keys:
        keys = [str(i) for i in range(n)]
    if len(set(keys)) != len(keys):
        raise DataError(f"{source} names the same array twice; the file is corrupt")
    out = {k: a for k, a in zip(keys, arrays) if a is not None}
    dtypes = sorted({str(a.dtype) for a in out.values()})
    return out, {"layouts": sorted(layouts), "dtypes": dtypes}


def read_params(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a ``.params`` file; returns the arrays and a summary (layouts, dtypes, file name, md5)."""
    data = read_file(path, "MXNet params file")
    arrays, summary = parse_params(data, Path(path).name)
    return arrays, {**provenance(path, data), **summary}
