"""A minimal reader of the protobuf wire format, enough to walk a Caffe ``NetParameter`` without protobuf.

A message is a sequence of ``(tag, value)`` pairs, ``tag = field << 3 | wire_type``. :func:`parse` splits
one message into ``{field: [value, ...]}`` without copying: length-delimited values stay ``memoryview``
slices of the file. Repeated floats may be packed (one length-delimited blob) or not (one fixed32 field per
value); long unpacked runs are gathered with numpy instead of a Python loop, because a Caffe blob holds
millions of them. Every length is checked against the bytes that remain before anything is sliced, so a
truncated or hostile file fails with :class:`nin.errors.DataError` instead of a huge allocation.
"""

from __future__ import annotations

import numpy as np

from nin.errors import DataError

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
_WIDTH = {FIXED32: 4, FIXED64: 8}


class Run:
    """Consecutive unpacked fixed-width values of one field: their raw little-endian bytes, tags stripped."""

    __slots__ = ("raw",)

    def __init__(self, raw: np.ndarray) -> None:
        self.raw = raw  # uint8 (n, width)


Fields = dict[int, list]


def read_varint(buf: memoryview, pos: int, end: int, where: str) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``; returns (value, next position)."""
    result = shift = 0
    while True:
        if pos >= end:
            raise DataError(f"{where}: truncated (a number runs past the end of its message)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DataError(f"{where}: corrupt (a number longer than 10 bytes); this is not a protobuf file")


def _run_length(a: np.ndarray, pos: int, end: int, tag: int, width: int) -> int:
    """How many records ``[tag byte, width bytes]`` follow from ``pos`` (chunked, so short runs stay cheap)."""
    n, chunk, rec = 0, 64, width + 1
    while True:
        avail = (end - pos) // rec
        if avail == 0:
            return n
        k = min(chunk, avail)
        bad = np.flatnonzero(a[pos : pos + k * rec : rec] != tag)
        if bad.size:
            return n + int(bad[0])
        n, pos, chunk = n + k, pos + k * rec, chunk * 2


def parse(buf: bytes | memoryview, where: str) -> Fields:
    """Split one message into ``{field number: [values]}`` in file order.

    Values: ``int`` (varint), ``memoryview`` (length-delimited, or the raw bytes of one fixed32/fixed64)
    or :class:`Run` (several unpacked fixed-width values in a row).

    Args:
        buf: the message's bytes.
        where: what the message is (``"layer 'conv1'"``), for error messages.
    """
    buf = memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf
    end = len(buf)
    a = np.frombuffer(buf, dtype=np.uint8)
    fields: Fields = {}
    pos = 0
    while pos < end:
        start = pos
        key, pos = read_varint(buf, pos, end, where)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise DataError(f"{where}: corrupt (field number 0 at byte {start}); this is not a protobuf file")
        if wire == VARINT:
            value, pos = read_varint(buf, pos, end, where)
        elif wire == LEN:
            length, pos = read_varint(buf, pos, end, where)
            if length > end - pos:
                raise DataError(
                    f"{where}: truncated (field {field} says {length} bytes, only {end - pos} remain); "
                    "the file was not copied completely"
                )
            value, pos = buf[pos : pos + length], pos + length
        elif wire in _WIDTH:
            width = _WIDTH[wire]
            if pos - start == 1:  # one-byte tag: gather the whole run of this field at once
                n = _run_length(a, start, end, key, width)
                if n > 1:
                    raw = a[start : start + n * (width + 1)].reshape(n, width + 1)[:, 1:]
                    fields.setdefault(field, []).append(Run(raw))
                    pos = start + n * (width + 1)
                    continue
            if width > end - pos:
                raise DataError(f"{where}: truncated (a {width}-byte value runs past the end)")
            value, pos = buf[pos : pos + width], pos + width
        else:
            raise DataError(f"{where}: corrupt (wire type {wire} at byte {start}); this is not a Caffe protobuf file")
        fields.setdefault(field, []).append(value)
    return fields


def last_int(fields: Fields, field: int, default: int | None = None) -> int | None:
    """A scalar varint field (proto2: the last occurrence wins)."""
    values = [v for v in fields.get(field, ()) if isinstance(v, int)]
    return values[-1] if values else default


def ints(fields: Fields, field: int, where: str) -> list[int]:
    """A repeated varint field, packed or not (two's-complement int64 read as negative)."""
    out: list[int] = []
    for v in fields.get(field, ()):
        if isinstance(v, int):
            out.append(v)
        elif isinstance(v, memoryview):
            pos, end = 0, len(v)
            while pos < end:
                x, pos = read_varint(v, pos, end, where)
                out.append(x)
    return [x - (1 << 64) if x >= 1 << 63 else x for x in out]


def string(fields: Fields, field: int, where: str, default: str = "") -> str:
    values = [v for v in fields.get(field, ()) if isinstance(v, memoryview)]
    if not values:
        return default
    try:
        return bytes(values[-1]).decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{where}: field {field} is not text; the file is corrupt") from None


def strings(fields: Fields, field: int, where: str) -> list[str]:
    return [bytes(v).decode("utf-8", "replace") for v in fields.get(field, ()) if isinstance(v, memoryview)]


def messages(fields: Fields, field: int) -> list[memoryview]:
    return [v for v in fields.get(field, ()) if isinstance(v, memoryview)]


def reals(fields: Fields, field: int, dtype: str, where: str) -> np.ndarray:
    """A repeated float (``"<f4"``) or double (``"<f8"``) field, packed, unpacked or both, in file order."""
    width = np.dtype(dtype).itemsize
    parts: list[np.ndarray] = []
    for v in fields.get(field, ()):
        if isinstance(v, Run):
            parts.append(np.ascontiguousarray(v.raw).view(dtype).reshape(-1))
        elif isinstance(v, memoryview):
            # Packed blob, or one unpacked value (its raw bytes): both are plain little-endian arrays.
            if len(v) % width:
                raise DataError(f"{where}: field {field} holds {len(v)} bytes, not a whole number of {dtype} values")
            parts.append(np.frombuffer(v, dtype=dtype))
        else:
            raise DataError(f"{where}: field {field} should hold real numbers but holds a varint")
    if not parts:
        return np.zeros(0, dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
