"""Reading Caffe's binary files: ``.caffemodel`` (a ``NetParameter``) and ``.binaryproto`` mean images.

Both layouts Caffe ever wrote are read: V1 (``layers``, field 2, enum layer types; the 2014 Model Zoo
files) and V2 (``layer``, field 100, string types). Blob values may be packed or unpacked floats or
``double_data``; blob shapes may be the legacy ``num/channels/height/width`` or ``shape``. Field numbers
are those of Caffe's ``caffe.proto`` (see docs/pretrained.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nin.errors import DataError
from nin.interop import protowire as pw
from nin.interop.files import provenance, read_file

# V1LayerParameter.LayerType values -> the V2 type strings (the ones a NIN net can contain, and the
# common others so error messages can name them).
V1_TYPES = {
    1: "Accuracy",
    3: "Concat",
    4: "Convolution",
    5: "Data",
    6: "Dropout",
    8: "Flatten",
    12: "ImageData",
    14: "InnerProduct",
    15: "LRN",
    17: "Pooling",
    18: "ReLU",
    20: "Softmax",
    21: "SoftmaxWithLoss",
    22: "Split",
    29: "MemoryData",
}
POOL_METHODS = {0: "max", 1: "avg", 2: "stochastic"}


@dataclass
class Blob:
    """One ``BlobProto``: its declared shape and its values (float32 or float64, flat)."""

    shape: tuple[int, ...]
    data: np.ndarray
    legacy_dims: bool = False


@dataclass
class Layer:
    """The parts of one Caffe layer that NIN needs."""

    name: str
    type: str
    bottoms: list[str] = field(default_factory=list)
    tops: list[str] = field(default_factory=list)
    blobs: list[Blob] = field(default_factory=list)
    conv: dict | None = None  # num_output, kernel, stride, pad, group, bias_term
    pool: dict | None = None  # method, kernel, stride, pad, global, round


@dataclass
class Net:
    """A parsed ``NetParameter``."""

    name: str
    layout: str  # "V1" (layers, field 2) or "V2" (layer, field 100)
    layers: list[Layer]


def _blob(buf: memoryview, where: str) -> Blob:
    f = pw.parse(buf, where)
    data = pw.reals(f, 5, "<f4", where)
    doubles = pw.reals(f, 8, "<f8", where)
    if doubles.size:
        if data.size:
            raise DataError(f"{where}: blob holds both float and double values; the file is corrupt")
        data = doubles
    shapes = pw.messages(f, 7)
    if shapes:
        shape = tuple(pw.ints(pw.parse(shapes[-1], where), 1, where))
        legacy = False
    else:
        legacy = True
        shape = tuple(pw.last_int(f, k, 0) for k in (1, 2, 3, 4))
        if shape == (0, 0, 0, 0):
            shape = (data.size,)
    if any(d < 0 for d in shape) or int(np.prod(shape, dtype=np.float64)) != data.size:
        raise DataError(
            f"{where}: blob declares shape {shape} ({int(np.prod(shape, dtype=np.float64))} values) but holds "
            f"{data.size}; the file is truncated or corrupt"
        )
    return Blob(shape, data, legacy)


def _spatial(f: pw.Fields, repeated: int, h: int, w: int, default: int, where: str) -> tuple[int, int]:
    """Caffe's ``kernel_size``/``stride``/``pad`` (repeated, or one for both) or their ``_h``/``_w`` forms."""
    vh, vw = pw.last_int(f, h), pw.last_int(f, w)
    if vh is not None or vw is not None:
        return (vh if vh is not None else default, vw if vw is not None else default)
    values = pw.ints(f, repeated, where)
    if not values:
        return (default, default)
    return (values[0], values[-1])


def _conv_param(buf: memoryview, where: str) -> dict:
    f = pw.parse(buf, where)
    return {
        "num_output": pw.last_int(f, 1, 0),
        "bias_term": bool(pw.last_int(f, 2, 1)),
        "pad": _spatial(f, 3, 9, 10, 0, where),
        "kernel": _spatial(f, 4, 11, 12, 0, where),
        "stride": _spatial(f, 6, 13, 14, 1, where),
        "group": pw.last_int(f, 5, 1),
    }


def _pool_param(buf: memoryview, where: str) -> dict:
    f = pw.parse(buf, where)
    kernel = _spatial(f, 2, 5, 6, 0, where)
    return {
        "method": POOL_METHODS.get(pw.last_int(f, 1, 0), "unknown"),
        "kernel": kernel,
        "stride": _spatial(f, 3, 7, 8, 1, where),
        "pad": _spatial(f, 4, 9, 10, 0, where),
        "global": bool(pw.last_int(f, 12, 0)),
        "round": "floor" if pw.last_int(f, 13, 0) == 1 else "ceil",
    }


# field numbers: (name, type, bottom, top, blobs, convolution_param, pooling_param)
_V1 = (4, 5, 2, 3, 6, 10, 19)
_V2 = (1, 2, 3, 4, 7, 106, 121)


def _layer(buf: memoryview, index: int, layout: str, source: str) -> Layer:
    where = f"{source}: layer #{index}"
    f = pw.parse(buf, where)
    n_name, n_type, n_bottom, n_top, n_blobs, n_conv, n_pool = _V1 if layout == "V1" else _V2
    name = pw.string(f, n_name, where, default=f"#{index}")
    where = f"{source}: layer {name!r}"
    if layout == "V1":
        if 1 in f and n_name not in f:
            raise DataError(
                f"{source} uses Caffe's pre-2014 V0 layer format; upgrade it with Caffe's "
                "`upgrade_net_proto_binary` and import the result"
            )
        code = pw.last_int(f, n_type, 0)
        kind = V1_TYPES.get(code, f"V1 type {code}")
    else:
        kind = pw.string(f, n_type, where)
    layer = Layer(name, kind, pw.strings(f, n_bottom, where), pw.strings(f, n_top, where))
    layer.blobs = [_blob(b, f"{where} blob {i}") for i, b in enumerate(pw.messages(f, n_blobs))]
    if pw.messages(f, n_conv):
        layer.conv = _conv_param(pw.messages(f, n_conv)[-1], where)
    if pw.messages(f, n_pool):
        layer.pool = _pool_param(pw.messages(f, n_pool)[-1], where)
    return layer


def _partial_name(buf: memoryview, layout: str) -> str | None:
    """Best-effort name of a layer whose bytes are cut short (for the error message)."""
    n_name = (_V1 if layout == "V1" else _V2)[0]
    pos, end = 0, len(buf)
    try:
        while pos < end:
            key, pos = pw.read_varint(buf, pos, end, "")
            if key & 7 == pw.LEN:
                length, pos = pw.read_varint(buf, pos, end, "")
                if key >> 3 == n_name and pos + length <= end:
                    return bytes(buf[pos : pos + length]).decode("utf-8")
                pos += length
            elif key & 7 == pw.VARINT:
                _, pos = pw.read_varint(buf, pos, end, "")
            else:
                pos += 4 if key & 7 == pw.FIXED32 else 8
    except (DataError, UnicodeDecodeError):
        return None
    return None


def parse_net(data: bytes, source: str = "caffemodel") -> Net:
    """Parse the bytes of a ``.caffemodel`` (binary ``NetParameter``)."""
    buf = memoryview(data)
    end = len(buf)
    top: pw.Fields = {}
    pos, index = 0, 0
    # The top level is walked by hand (not pw.parse) so that a cut-off layer can be named.
    while pos < end:
        key, pos = pw.read_varint(buf, pos, end, source)
        number, wire = key >> 3, key & 7
        if wire == pw.LEN:
            length, pos = pw.read_varint(buf, pos, end, source)
            if length > end - pos:
                layout = "V1" if number == 2 else "V2"
                name = _partial_name(buf[pos:end], layout) if number in (2, 100) else None
                what = f"layer #{index} ({name!r})" if name else f"field {number}"
                raise DataError(
                    f"{source} is truncated: {what} needs {length} bytes but only {end - pos} remain; "
                    "download the file again"
                )
            top.setdefault(number, []).append(buf[pos : pos + length])
            pos += length
            index += number in (2, 100)
        elif wire == pw.VARINT:
            value, pos = pw.read_varint(buf, pos, end, source)
            top.setdefault(number, []).append(value)
        elif wire in (pw.FIXED32, pw.FIXED64):
            pos += 4 if wire == pw.FIXED32 else 8
            if pos > end:
                raise DataError(f"{source} is truncated; download the file again")
        else:
            raise DataError(f"{source} is not a Caffe model (bad protobuf wire type {wire} at byte {pos})")
    v1, v2 = pw.messages(top, 2), pw.messages(top, 100)
    if not v1 and not v2:
        raise DataError(f"{source} holds no layers; is it a .caffemodel (not a .prototxt or a mean file)?")
    layout, raw = ("V2", v2) if v2 else ("V1", v1)
    layers = [_layer(b, i, layout, source) for i, b in enumerate(raw)]
    return Net(pw.string(top, 1, source), layout, layers)


def read_caffemodel(path: str | Path) -> tuple[Net, dict]:
    """Read a ``.caffemodel``; returns the net and its provenance (file name, size, md5)."""
    data = read_file(path, "Caffe model")
    return parse_net(data, Path(path).name), provenance(path, data)


def read_mean_binaryproto(path: str | Path) -> np.ndarray:
    """A Caffe mean file (one ``BlobProto``, usually (1, 3, 256, 256) BGR) as float32 (C, H, W)."""
    data = read_file(path, "mean file")
    blob = _blob(memoryview(data), Path(path).name)
    shape = blob.shape
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise DataError(f"{path}: a mean image must be (1, C, H, W) with C = 1 or 3, not {blob.shape}")
    return blob.data.astype(np.float32).reshape(shape)
