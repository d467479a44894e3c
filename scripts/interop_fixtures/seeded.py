"""Deterministic NIN-shaped weights and inputs, and byte-exact writers of the two foreign formats.

Pure numpy (any version >= 1.17), so that both the fixture script (which runs MXNet and protobuf in a
throwaway environment) and the tests (which have neither) can rebuild the same multi-megabyte files from a
seed. The fixture script checks that these writers produce exactly the bytes MXNet's ``nd.save`` and
protobuf's ``SerializeToString`` produce, and records each file's sha256; the tests rebuild the files and
check the sha256 before importing them. So the big files never need to be committed.

Random values come from ``PCG64.random_raw``: the raw bit stream of a specified generator, which numpy
keeps stable across versions (unlike the distribution methods).
"""

from __future__ import annotations

import struct

import numpy as np

# name, (out, in, k), stride, pad -- Caffe's spelling of the names.
IMAGENET_CONVS = [
    ("conv1", (96, 3, 11), 4, 0),
    ("cccp1", (96, 96, 1), 1, 0),
    ("cccp2", (96, 96, 1), 1, 0),
    ("conv2", (256, 96, 5), 1, 2),
    ("cccp3", (256, 256, 1), 1, 0),
    ("cccp4", (256, 256, 1), 1, 0),
    ("conv3", (384, 256, 3), 1, 1),
    ("cccp5", (384, 384, 1), 1, 0),
    ("cccp6", (384, 384, 1), 1, 0),
    ("conv4-1024", (1024, 384, 3), 1, 1),
    ("cccp7-1024", (1024, 1024, 1), 1, 0),
    ("cccp8-1024", (1000, 1024, 1), 1, 0),
]
CIFAR10_CONVS = [
    ("conv1", (192, 3, 5), 1, 2),
    ("cccp1", (160, 192, 1), 1, 0),
    ("cccp2", (96, 160, 1), 1, 0),
    ("conv2", (192, 96, 5), 1, 2),
    ("cccp3", (192, 192, 1), 1, 0),
    ("cccp4", (192, 192, 1), 1, 0),
    ("conv3", (192, 192, 3), 1, 1),
    ("cccp5", (192, 192, 1), 1, 0),
    ("cccp6", (10, 192, 1), 1, 0),
]
# Pools after these convolutions: (method: 0 MAX / 1 AVE, kernel, stride). The Model Zoo CIFAR-10 net
# averages after block 2; both nets end with an average pool as large as the last feature map.
IMAGENET_POOLS = {"cccp2": (0, 3, 2), "cccp4": (0, 3, 2), "cccp6": (0, 3, 2), "cccp8-1024": (1, 6, 1)}
CIFAR10_POOLS = {"cccp2": (0, 3, 2), "cccp4": (1, 3, 2), "cccp6": (1, 8, 1)}
DROPOUT_BEFORE = {"imagenet": ("conv4-1024",), "cifar10": ("conv2", "conv3")}
# The last layer's weights are scaled up so that the outputs are far from uniform: a test comparing
# softmax outputs then fails on any mistake instead of passing on a flat distribution.
LAST_GAIN = {"imagenet": 0.02, "cifar10": 4.5}


def uniform(seed: int, stream: int, n: int) -> np.ndarray:
    """``n`` float32 values k / 2**23 - 1 in [-1, 1), exactly representable, from a seeded PCG64 stream."""
    raw = np.random.PCG64([seed, stream]).random_raw(n)
    k = (raw >> np.uint64(40)).astype(np.float32)  # 24 random bits: exact in float32, as is what follows
    return k * np.float32(2.0**-23) - np.float32(1.0)


def conv_weights(arch: str, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """He-uniform weights and small positive biases for every convolution: ``[(caffe name, W, b)]``."""
    convs = IMAGENET_CONVS if arch == "imagenet" else CIFAR10_CONVS
    out = []
    for i, (name, (o, c, k), _, _) in enumerate(convs):
        fan_in = c * k * k
        scale = np.float32(np.sqrt(6.0 / fan_in))
        if i == len(convs) - 1:
            scale = np.float32(scale * np.float32(LAST_GAIN[arch]))
        w = (uniform(seed, 2 * i, o * fan_in) * scale).reshape(o, c, k, k)
        b = uniform(seed, 2 * i + 1, o) * np.float32(0.05) + np.float32(0.05)
        out.append((name, w, b))
    return out


def inputs(seed: int, n: int, shape: tuple[int, int, int], amplitude: float) -> np.ndarray:
    """``n`` network inputs (already preprocessed), uniform in [-amplitude, amplitude)."""
    size = n * shape[0] * shape[1] * shape[2]
    return (uniform(seed, 1000, size) * np.float32(amplitude)).reshape(n, *shape)


# --- MXNet NDArray lists ------------------------------------------------------------------------------
_TYPE_FLAGS = {np.dtype("<f4"): 0, np.dtype("<f8"): 1, np.dtype("<f2"): 2}
MAGIC = {"V1": 0xF993FAC8, "V2": 0xF993FAC9, "V3": 0xF993FACA}


def ndarray_list(items: list[tuple[str, np.ndarray]], layout: str) -> bytes:
    """An MXNet ``.params`` file in ``layout`` (legacy, V1, V2, V3), arrays on the CPU context."""
    parts = [struct.pack("<QQQ", 0x112, 0, len(items))]
    for _, a in items:
        a = np.ascontiguousarray(a)
        if layout == "legacy":
            parts.append(struct.pack(f"<I{a.ndim}I", a.ndim, *a.shape))
        else:
            parts.append(struct.pack("<I", MAGIC[layout]))
            if layout in ("V2", "V3"):
                parts.append(struct.pack("<i", 0))  # dense storage
            parts.append(struct.pack(f"<i{a.ndim}q", a.ndim, *a.shape))
        parts.append(struct.pack("<iii", 1, 0, _TYPE_FLAGS[a.dtype]))  # cpu(0), element type
        parts.append(a.astype(a.dtype.newbyteorder("<")).tobytes())
    parts.append(struct.pack("<Q", len(items)))
    for key, _ in items:
        parts.append(struct.pack("<Q", len(key.encode())) + key.encode())
    return b"".join(parts)


def mxnet_items(weights: list[tuple[str, np.ndarray, np.ndarray]], dtype: str = "<f4") -> list:
    """``arg:<name>_weight`` / ``_bias`` items in graph order (MXNet's names use '_' for Caffe's '-')."""
    items = []
    for name, w, b in weights:
        key = name.replace("-", "_")
        items += [(f"arg:{key}_weight", w.astype(dtype)), (f"arg:{key}_bias", b.astype(dtype))]
    return items


# --- protobuf (Caffe) -----------------------------------------------------------------------------------
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def ld(field: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag(field, 2) + varint(len(payload)) + payload


def vint(field: int, value: int) -> bytes:
    return tag(field, 0) + varint(value)


def reals(field: int, a: np.ndarray, packed: bool, dtype: str) -> bytes:
    raw = np.ascontiguousarray(a, dtype=dtype).reshape(-1)
    if packed:
        return ld(field, raw.tobytes()) if raw.size else b""
    width = raw.dtype.itemsize
    rec = np.empty((raw.size, 1 + width), dtype=np.uint8)
    rec[:, 0] = (field << 3) | (5 if width == 4 else 1)
    rec[:, 1:] = raw.view(np.uint8).reshape(-1, width)
    return rec.tobytes()


def blob(a: np.ndarray, dims: tuple[int, ...], legacy: bool, packed: bool, double: bool) -> bytes:
    """A ``BlobProto`` (fields in number order, as protobuf writes them)."""
    out = b""
    if legacy:
        out += b"".join(vint(f, d) for f, d in zip((1, 2, 3, 4), dims))
    if not double:
        out += reals(5, a, packed, "<f4")
    if not legacy:
        out += ld(7, ld(1, b"".join(varint(d) for d in dims)))  # BlobShape.dim, packed int64
    if double:
        out += reals(8, a, packed, "<f8")
    return out


def legacy_dims(shape: tuple[int, ...], wrong: bool) -> tuple[int, int, int, int]:
    """Caffe's num/channels/height/width for a weight or bias; ``wrong`` = the 2014 file's flattened dims."""
    if len(shape) == 1:
        return (1, 1, 1, shape[0])
    o, c, kh, kw = shape
    return (1, 1, o, c * kh * kw) if wrong else (o, c, kh, kw)


def net_layers(arch: str) -> list[dict]:
    """The NIN as a list of Caffe layers (deploy order, in-place ReLUs, a loss layer at the end)."""
    convs = IMAGENET_CONVS if arch == "imagenet" else CIFAR10_CONVS
    pools = IMAGENET_POOLS if arch == "imagenet" else CIFAR10_POOLS
    layers: list[dict] = []
    bottom, n_pool, n_drop = "data", 0, 0
    for n_relu, (name, (o, _, k), stride, pad) in enumerate(convs):
        if name in DROPOUT_BEFORE[arch]:
            n_drop += 1
            layers.append({"name": f"drop{n_drop}", "type": "Dropout", "bottom": bottom, "top": bottom})
        layers.append({"name": name, "type": "Convolution", "bottom": bottom, "top": name, "conv": (o, pad, k, stride)})
        layers.append({"name": f"relu{n_relu}", "type": "ReLU", "bottom": name, "top": name})
        bottom = name
        if name in pools:
            n_pool += 1
            top = f"pool{n_pool}"
            layers.append({"name": top, "type": "Pooling", "bottom": bottom, "top": top, "pool": pools[name]})
            bottom = top
    layers.append({"name": "loss", "type": "SoftmaxWithLoss", "bottom": bottom, "top": "loss"})
    return layers


V1_ENUM = {"Convolution": 4, "Dropout": 6, "Pooling": 17, "ReLU": 18, "SoftmaxWithLoss": 21}


def caffemodel(
    arch: str,
    weights: list,
    layout: str,
    packed: bool,
    legacy: bool,
    wrong_dims: bool = False,
    double_layers: tuple[str, ...] = (),
) -> bytes:
    """A ``NetParameter`` holding ``weights`` in ``layout`` (V1: ``layers``/enums; V2: ``layer``/strings)."""
    by_name = {name: (w, b) for name, w, b in weights}
    out = ld(1, f"nin_{arch}".encode())
    for layer in net_layers(arch):
        blobs = b""
        if layer["name"] in by_name:
            for a in by_name[layer["name"]]:
                dims = legacy_dims(a.shape, wrong_dims) if legacy else a.shape
                blobs += ld(7 if layout == "V2" else 6, blob(a, dims, legacy, packed, layer["name"] in double_layers))
        params = b""
        if "conv" in layer:
            o, pad, k, stride = layer["conv"]
            conv = vint(1, o) + (vint(3, pad) if pad else b"") + vint(4, k) + (vint(6, stride) if stride != 1 else b"")
            params += ld(106 if layout == "V2" else 10, conv)
        if layer["type"] == "Dropout":
            params += ld(108 if layout == "V2" else 12, tag(1, 5) + struct.pack("<f", 0.5))
        if "pool" in layer:
            method, k, stride = layer["pool"]
            params += ld(121 if layout == "V2" else 19, vint(1, method) + vint(2, k) + vint(3, stride))
        bottoms = [layer["bottom"]] + (["label"] if layer["type"] == "SoftmaxWithLoss" else [])
        if layout == "V2":
            body = ld(1, layer["name"].encode()) + ld(2, layer["type"].encode())
            body += b"".join(ld(3, x.encode()) for x in bottoms) + ld(4, layer["top"].encode())
            body += blobs + params
            # V2 puts params at field numbers > blobs, except dropout (108) < pooling (121): sort by field.
            out += ld(100, body)
        else:
            body = b"".join(ld(2, x.encode()) for x in bottoms) + ld(3, layer["top"].encode())
            body += ld(4, layer["name"].encode()) + vint(5, V1_ENUM[layer["type"]]) + blobs + params
            out += ld(2, body)
    return out


def mean_binaryproto(mean: np.ndarray) -> bytes:
    """A Caffe mean file: one ``BlobProto`` (1, C, H, W) with legacy dims and packed floats."""
    return blob(mean, (1, *mean.shape), legacy=True, packed=True, double=False)
