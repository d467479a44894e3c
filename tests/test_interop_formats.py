"""The hand-written readers: protobuf wire format, NDArray lists, symbol JSON, prototxt; hostile inputs."""

import struct
import time

import numpy as np
import pytest

from _interop import seeded
from nin.errors import DataError
from nin.interop import protowire as pw
from nin.interop.caffe import parse_net
from nin.interop.mxnet_params import parse_params
from nin.interop.prototxt import parse_text


# --- protobuf wire format ----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**31, 2**63 + 5])
def test_varint_round_trip(n):
    data = seeded.varint(n)
    assert pw.read_varint(memoryview(data), 0, len(data), "x") == (n, len(data))


def test_packed_unpacked_and_mixed_floats_read_the_same():
    a = np.arange(1000, dtype=np.float32) / 7
    packed = seeded.reals(5, a, True, "<f4")
    unpacked = seeded.reals(5, a, False, "<f4")
    mixed = seeded.reals(5, a[:10], False, "<f4") + seeded.vint(1, 3) + seeded.reals(5, a[10:], True, "<f4")
    for data in (packed, unpacked, mixed):
        f = pw.parse(data, "blob")
        assert np.array_equal(pw.reals(f, 5, "<f4", "blob"), a)
    assert pw.last_int(pw.parse(mixed, "blob"), 1) == 3
    d = np.linspace(-1, 1, 33)
    assert np.array_equal(pw.reals(pw.parse(seeded.reals(8, d, False, "<f8"), "b"), 8, "<f8", "b"), d)


def test_unpacked_run_stops_at_the_next_field():
    a = np.ones(5, np.float32)
    data = seeded.reals(5, a, False, "<f4") + seeded.ld(2, b"name") + seeded.reals(5, 2 * a, False, "<f4")
    f = pw.parse(data, "m")
    assert pw.reals(f, 5, "<f4", "m").tolist() == [1.0] * 5 + [2.0] * 5
    assert pw.strings(f, 2, "m") == ["name"]


def test_huge_length_is_refused_without_allocating():
    data = seeded.tag(5, 2) + seeded.varint(2**62) + b"\x00" * 16
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"says 4611686018427387904 bytes, only 16 remain"):
        pw.parse(data, "blob")
    assert time.perf_counter() - start < 1.0


def test_garbage_is_not_protobuf():
    with pytest.raises(DataError, match="wire type 7"):
        pw.parse(b"\x0f\x00", "x")
    with pytest.raises(DataError, match="truncated"):
        pw.parse(b"\x08\xff\xff", "x")


def test_caffe_v1_v2_layouts_and_blob_shapes():
    w = [("conv1", np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), np.array([1, 2], np.float32))]
    seeded_convs = {"conv1": w[0]}
    for layout, legacy in (("V2", False), ("V1", True)):
        body = seeded.ld(1, b"conv1") + seeded.ld(2, b"Convolution") if layout == "V2" else b""
        blobs = b"".join(
            seeded.ld(
                7 if layout == "V2" else 6,
                seeded.blob(a, seeded.legacy_dims(a.shape, False) if legacy else a.shape, legacy, True, False),
            )
            for a in seeded_convs["conv1"][1:]
        )
        if layout == "V1":
            body = seeded.ld(4, b"conv1") + seeded.vint(5, 4)
        net = parse_net(seeded.ld(100 if layout == "V2" else 2, body + blobs))
        layer = net.layers[0]
        assert net.layout == layout and layer.name == "conv1" and layer.type == "Convolution"
        assert layer.blobs[0].shape == (2, 3, 2, 2) and layer.blobs[0].legacy_dims == legacy
        assert layer.blobs[1].shape == ((1, 1, 1, 2) if legacy else (2,))
        assert np.array_equal(layer.blobs[0].data, w[0][1].ravel())


def test_blob_whose_shape_and_values_disagree():
    blob = seeded.blob(np.zeros(5, np.float32), (2, 3), False, True, False)
    with pytest.raises(DataError, match=r"declares shape \(2, 3\) \(6 values\) but holds 5"):
        parse_net(seeded.ld(100, seeded.ld(1, b"conv9") + seeded.ld(7, blob)))


def test_v0_and_empty_files_are_explained():
    with pytest.raises(DataError, match="V0 layer format"):
        parse_net(seeded.ld(2, seeded.ld(1, b"\x0a\x03old")))
    with pytest.raises(DataError, match="holds no layers"):
        parse_net(seeded.ld(1, b"just a name"))


# --- MXNet NDArray lists -------------------------------------------------------------------------------
ARRAYS = [
    ("arg:a", np.arange(6, dtype=np.float32).reshape(2, 3)),
    ("arg:b", np.array([1.5, -2.0], np.float16)),
    ("aux:c", np.linspace(0, 1, 24).reshape(2, 3, 4)),
]


@pytest.mark.parametrize("layout", ["legacy", "V1", "V2", "V3"])
def test_every_layout_and_dtype(layout):
    arrays, summary = parse_params(seeded.ndarray_list(ARRAYS, layout), "p")
    assert summary["layouts"] == [layout]
    for key, a in ARRAYS:
        assert arrays[key].dtype == a.dtype and np.array_equal(arrays[key], a)


def _header(n: int) -> bytes:
    return struct.pack("<QQQ", 0x112, 0, n)


def test_empty_arrays_are_skipped():
    v2_empty = struct.pack("<Iii", 0xF993FAC9, 0, 0)  # V2: ndim 0 = empty
    v3_empty = struct.pack("<Iii", 0xF993FACA, 0, -1)  # V3: ndim -1 = unknown
    keys = struct.pack("<Q", 2) + struct.pack("<Q", 1) + b"x" + struct.pack("<Q", 1) + b"y"
    arrays, _ = parse_params(_header(2) + v2_empty + v3_empty + keys, "p")
    assert arrays == {}


@pytest.mark.parametrize(
    "body,message",
    [
        (struct.pack("<Iii", 0xF993FAC9, 0, 1_000_000), "claims 1000000 dimensions"),
        (
            struct.pack("<Iiiq", 0xF993FAC9, 0, 1, 2**60) + struct.pack("<iii", 1, 0, 0),
            "needs 4611686018427387904 bytes",
        ),
        (struct.pack("<IIIII", 3, 2**31, 2**31, 2**31, 1) + b"\0" * 8, r"needs \d+ bytes but only 0 remain"),
        (struct.pack("<I", 0xDEADBEEF), "neither an NDArray magic number"),
        (struct.pack("<Iii", 0xF993FAC9, 1, 1), "sparse array"),
        (struct.pack("<Iiiqiii", 0xF993FAC9, 0, 1, 1, 1, 0, 99), "unknown element type 99"),
    ],
)
def test_hostile_headers_are_refused_before_allocating(body, message):
    start = time.perf_counter()
    with pytest.raises(DataError, match=message):
        parse_params(_header(1) + body, "evil.params")
    assert time.perf_counter() - start < 1.0


def test_absurd_counts_and_names():
    with pytest.raises(DataError, match=r"claims 1152921504606846976 arrays"):
        parse_params(_header(2**60) + b"\0" * 8, "p")
    data = seeded.ndarray_list(ARRAYS[:1], "V2")
    huge_key = data[: -len("arg:a") - 8] + struct.pack("<Q", 2**62)
    with pytest.raises(DataError, match="name #0 needs"):
        parse_params(huge_key, "p")


def test_truncated_params_name_the_array():
    data = seeded.ndarray_list(ARRAYS, "V2")
    with pytest.raises(DataError, match=r"cut.params is truncated or corrupt: array #2 \(of 3\) needs"):
        parse_params(data[:-60], "cut.params")
    with pytest.raises(DataError, match="not an MXNet NDArray file"):
        parse_params(b'{"nodes": [], "arg_nodes": [], "heads": []}', "symbol.json")


# --- prototxt -------------------------------------------------------------------------------------------------
def test_prototxt_text_format():
    msg = parse_text(
        """
        name: "net"  # a comment
        layer { name: 'c' type: "Convolution" bottom: "data"
                convolution_param { num_output: 96 kernel_size: 11 stride: 4 pad: [0] } }
        layers { type: POOLING pooling_param < pool: AVE kernel_size: 3 > }
        """
    )
    assert msg["name"] == ["net"]
    conv = msg["layer"][0]["convolution_param"][0]
    assert conv["num_output"] == [96] and conv["pad"] == [0]
    assert msg["layers"][0]["pooling_param"][0]["pool"] == ["AVE"]
    with pytest.raises(DataError, match="never closed"):
        parse_text("layer { name: 'x'")
