"""Write the interop test fixtures with the real frameworks (MXNet 1.9.1, protobuf), in a throwaway venv.

    python3 -m venv ../mxenv            # outside the repository; thrown away after
    ../mxenv/bin/pip install mxnet==1.9.1 'numpy<1.24' grpcio-tools
    ../mxenv/bin/python scripts/interop_fixtures/make_fixtures.py

Not a dependency of nin: nothing here is imported by the package or the tests except ``seeded.py``.

What it proves, for tests/fixtures/interop/ (a few hundred kB):

- MXNet: ModelHub's real ``nin-symbol.json`` with seeded random weights. MXNet itself writes the V2 (float32,
  float16, float64) and V3 ``.params`` files; ``seeded.ndarray_list`` must reproduce them byte for byte.
  The legacy and V1 layouts (MXNet reads but no longer writes them) come from ``seeded.ndarray_list`` and
  MXNet must load them back to the same values. MXNet's forward outputs (softmax inside the graph) on seeded
  inputs are stored, with every file's sha256.
- Caffe: ``.caffemodel`` files serialised by protobuf from a subset of caffe.proto (``caffe_subset.proto``,
  packed; and the same with unpacked floats), V2 and V1 layouts, legacy and wrong legacy dims,
  ``double_data``; ``seeded.caffemodel`` must reproduce each byte for byte. Their outputs are computed here
  with a plain numpy float64 forward pass that follows Caffe's layer definitions (not with nin), and
  cross-checked against MXNet on the ImageNet net.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import seeded  # noqa: E402

SEEDS = {"imagenet": 2013, "cifar10": 1312}
N_INPUTS = {"imagenet": 2, "cifar10": 4}
AMPLITUDE = {"imagenet": 100.0, "cifar10": 2.0}  # mean-subtracted 0-255 pixels; whitened CIFAR values


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- an independent reference: Caffe's layers in numpy float64 ---------------------------------------------
def np_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    out = np.tensordot(cols, w.astype(np.float64), axes=([1, 4, 5], [1, 2, 3]))  # (N, Ho, Wo, O)
    return out.transpose(0, 3, 1, 2) + b.astype(np.float64)[None, :, None, None]


def np_pool(x: np.ndarray, method: int, k: int, s: int) -> np.ndarray:
    """Caffe's PoolingLayer with pad 0: output size rounded up; AVE divides by the in-image window size."""
    n, c, h, w = x.shape
    ho, wo = -(-(h - k) // s) + 1, -(-(w - k) // s) + 1
    out = np.empty((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            hs, ws = i * s, j * s
            he, we = min(hs + k, h), min(ws + k, w)
            win = x[:, :, hs:he, ws:we]
            out[:, :, i, j] = win.max(axis=(2, 3)) if method == 0 else win.sum(axis=(2, 3)) / ((he - hs) * (we - ws))
    return out


def np_forward(arch: str, weights: list, x: np.ndarray) -> np.ndarray:
    convs = seeded.IMAGENET_CONVS if arch == "imagenet" else seeded.CIFAR10_CONVS
    pools = seeded.IMAGENET_POOLS if arch == "imagenet" else seeded.CIFAR10_POOLS
    h = x.astype(np.float64)
    for (name, _, stride, pad), (_, w, b) in zip(convs, weights):
        h = np.maximum(np_conv(h, w, b, stride, pad), 0.0)
        if name in pools:
            h = np_pool(h, *pools[name])
    return h.reshape(h.shape[0], -1)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --- protobuf ------------------------------------------------------------------------------------------------
def compile_protos(tmp: Path):
    from grpc_tools import protoc

    text = (HERE / "caffe_subset.proto").read_text()
    unpacked = text.replace("package caffe;", "package caffe_unpacked;").replace(" [packed = true]", "")
    unpacked = unpacked.replace("repeated int64 dim = 1;", "repeated int64 dim = 1 [packed = true];")
    (tmp / "caffe_pb.proto").write_text(text)
    (tmp / "caffe_unpacked_pb.proto").write_text(unpacked)
    for name in ("caffe_pb.proto", "caffe_unpacked_pb.proto"):
        if protoc.main(["protoc", f"-I{tmp}", f"--python_out={tmp}", str(tmp / name)]) != 0:
            raise SystemExit(f"protoc failed on {name}")
    sys.path.insert(0, str(tmp))
    return importlib.import_module("caffe_pb_pb2"), importlib.import_module("caffe_unpacked_pb_pb2")


def pb_blob(pb, blob, a: np.ndarray, dims, legacy: bool, double: bool) -> None:
    if legacy:
        blob.num, blob.channels, blob.height, blob.width = dims
    else:
        blob.shape.dim.extend(int(d) for d in dims)
    (blob.double_data if double else blob.data).extend(a.reshape(-1).tolist())


def pb_caffemodel(pb, arch, weights, layout, legacy, wrong_dims=False, double_layers=()) -> bytes:
    net = pb.NetParameter()
    net.name = f"nin_{arch}"
    by_name = {name: (w, b) for name, w, b in weights}
    for spec in seeded.net_layers(arch):
        layer = net.layer.add() if layout == "V2" else net.layers.add()
        layer.name = spec["name"]
        if layout == "V2":
            layer.type = spec["type"]
        else:
            layer.type = seeded.V1_ENUM[spec["type"]]
        layer.bottom.append(spec["bottom"])
        if spec["type"] == "SoftmaxWithLoss":
            layer.bottom.append("label")
        layer.top.append(spec["top"])
        for a in by_name.get(spec["name"], ()):
            dims = seeded.legacy_dims(a.shape, wrong_dims) if legacy else a.shape
            pb_blob(pb, layer.blobs.add(), a, dims, legacy, spec["name"] in double_layers)
        if "conv" in spec:
            o, pad, k, stride = spec["conv"]
            layer.convolution_param.num_output = o
            if pad:
                layer.convolution_param.pad.append(pad)
            layer.convolution_param.kernel_size.append(k)
            if stride != 1:
                layer.convolution_param.stride.append(stride)
        if spec["type"] == "Dropout":
            layer.dropout_param.dropout_ratio = 0.5
        if "pool" in spec:
            method, k, stride = spec["pool"]
            layer.pooling_param.pool = method
            layer.pooling_param.kernel_size = k
            layer.pooling_param.stride = stride
    return net.SerializeToString()


CAFFE_FILES = {
    # name: (arch, proto packed?, layout, legacy dims?, wrong legacy dims?, layers stored as double_data)
    "cifar10_v2.caffemodel": ("cifar10", True, "V2", False, False, ()),
    "cifar10_v1_unpacked.caffemodel": ("cifar10", False, "V1", True, False, ("conv1", "cccp6")),
    "imagenet_v1_legacy.caffemodel": ("imagenet", True, "V1", True, True, ()),
}
PARAMS_FILES = {
    # name: (layout, dtype, writer)
    "nin-legacy.params": ("legacy", "<f4", "seeded.ndarray_list, loaded back by mxnet"),
    "nin-v1.params": ("V1", "<f4", "seeded.ndarray_list, loaded back by mxnet"),
    "nin-v2.params": ("V2", "<f4", "mxnet.nd.save"),
    "nin-v2-f16.params": ("V2", "<f2", "mxnet.nd.save"),
    "nin-v2-f64.params": ("V2", "<f8", "mxnet.nd.save"),
    "nin-v3.params": ("V3", "<f4", "mxnet.nd.save under mxnet.npx.set_np()"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modelhub", type=Path, default=ROOT.parent / "shared" / "data" / "modelhub-nin")
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "interop")
    args = ap.parse_args()
    import google.protobuf
    import mxnet as mx

    args.out.mkdir(parents=True, exist_ok=True)
    manifest: dict = {
        "seeds": SEEDS,
        "inputs": {a: {"n": N_INPUTS[a], "amplitude": AMPLITUDE[a]} for a in SEEDS},
        "versions": {"mxnet": mx.__version__, "protobuf": google.protobuf.__version__, "numpy": np.__version__},
        "files": {},
    }
    ref: dict[str, np.ndarray] = {}
    w = {a: seeded.conv_weights(a, SEEDS[a]) for a in SEEDS}
    x = {
        "imagenet": seeded.inputs(SEEDS["imagenet"], N_INPUTS["imagenet"], (3, 224, 224), AMPLITUDE["imagenet"]),
        "cifar10": seeded.inputs(SEEDS["cifar10"], N_INPUTS["cifar10"], (3, 32, 32), AMPLITUDE["cifar10"]),
    }

    # Caffe ------------------------------------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        pb_packed, pb_unpacked = compile_protos(Path(tmp))
        for name, (arch, packed, layout, legacy, wrong, doubles) in CAFFE_FILES.items():
            pb = pb_packed if packed else pb_unpacked
            real = pb_caffemodel(pb, arch, w[arch], layout, legacy, wrong, doubles)
            mine = seeded.caffemodel(arch, w[arch], layout, packed, legacy, wrong, doubles)
            assert real == mine, f"seeded.caffemodel differs from protobuf's bytes for {name}"
            manifest["files"][name] = {
                "sha256": sha256(real),
                "bytes": len(real),
                "written_by": f"protobuf {google.protobuf.__version__} SerializeToString",
                "args": [arch, packed, layout, legacy, wrong, list(doubles)],
            }
            print(f"{name}: {len(real)} bytes, protobuf == seeded writer")
        mean = (seeded.uniform(SEEDS["imagenet"], 2000, 3 * 256 * 256) * np.float32(20) + np.float32(115)).reshape(
            3, 256, 256
        )
        real_mean = pb_packed.BlobProto()
        pb_blob(pb_packed, real_mean, mean, (1, 3, 256, 256), True, False)
        real_mean = real_mean.SerializeToString()
        assert real_mean == seeded.mean_binaryproto(mean)
        manifest["files"]["mean.binaryproto"] = {"sha256": sha256(real_mean), "bytes": len(real_mean)}
    ref["caffe_cifar10_logits"] = np_forward("cifar10", w["cifar10"], x["cifar10"]).astype(np.float32)
    ref["caffe_imagenet_logits"] = np_forward("imagenet", w["imagenet"], x["imagenet"]).astype(np.float32)

    # MXNet ------------------------------------------------------------------------------------------------
    symbol_json = (args.modelhub / "nin-symbol.json").read_text()
    sym = mx.sym.load_json(symbol_json)
    # MXNet's Caffe converter flips conv1 to take RGB; do the same, and feed the RGB view of the same inputs.
    w_rgb = [(n, (wt[:, ::-1].copy() if n == "conv1" else wt), b) for n, wt, b in w["imagenet"]]
    x_rgb = np.ascontiguousarray(x["imagenet"][:, ::-1])

    def mx_forward(arrays: dict) -> tuple[np.ndarray, np.ndarray]:
        args_ = {k.split(":", 1)[1]: mx.nd.array(v.asnumpy(), dtype="float32") for k, v in arrays.items()}
        args_["data"] = mx.nd.array(x_rgb)
        args_["prob_label"] = mx.nd.zeros((x_rgb.shape[0],))
        group = mx.sym.Group([sym, sym.get_internals()["flatten_output"]])
        ex = group.bind(mx.cpu(), args=args_, grad_req="null")
        probs, logits = ex.forward(is_train=False)
        return probs.asnumpy(), logits.asnumpy()

    outputs = {}
    for name, (layout, dtype, writer) in PARAMS_FILES.items():
        items = seeded.mxnet_items(w_rgb, dtype)
        path = Path(tempfile.mkdtemp()) / name
        mine = seeded.ndarray_list(items, layout)
        if layout in ("V2", "V3"):
            if layout == "V3":
                mx.npx.set_np()
            try:
                mx.nd.save(str(path), {k: mx.nd.array(v, dtype=v.dtype) for k, v in items})
            finally:
                mx.npx.reset_np()
            real = path.read_bytes()
            assert real == mine, f"seeded.ndarray_list differs from MXNet's bytes for {name}"
        else:
            path.write_bytes(mine)
            real = mine
        if layout == "V3":  # MXNet refuses V3 files outside NumPy shape semantics
            with mx.util.np_shape(True):
                loaded = {k: mx.nd.array(v.asnumpy(), dtype=v.dtype) for k, v in mx.nd.load(str(path)).items()}
        else:
            loaded = mx.nd.load(str(path))
        for k, v in items:
            got = loaded[k].asnumpy()
            assert got.dtype == v.dtype and np.array_equal(got, v), f"mxnet reads {k} of {name} differently"
        outputs[name] = mx_forward(loaded)
        manifest["files"][name] = {
            "sha256": sha256(real),
            "bytes": len(real),
            "layout": layout,
            "dtype": dtype,
            "written_by": writer,
        }
        print(f"{name}: {len(real)} bytes ({writer}); mxnet loads it")
    probs, logits = outputs["nin-v2.params"]
    for name, (p, _) in outputs.items():
        if PARAMS_FILES[name][1] != "<f2":
            assert np.abs(p - probs).max() < 1e-6, f"{name} gives other outputs"
    # MXNet and the numpy Caffe reference agree: the reference is right, and so is the BGR -> RGB flip.
    gap = np.abs(softmax(ref["caffe_imagenet_logits"].astype(np.float64)) - probs).max()
    assert gap < 1e-5, f"numpy Caffe reference and MXNet differ by {gap}"
    print(f"numpy reference vs MXNet: max |softmax difference| {gap:.2e}; max prob {probs.max(axis=1)}")
    ref["mxnet_probs"], ref["mxnet_logits"] = probs, logits
    ref["mxnet_probs_f16"], ref["mxnet_logits_f16"] = outputs["nin-v2-f16.params"]

    # The same graph as MXNet 1.9 writes it (attrs instead of param): both JSON forms must import.
    (args.out / "nin-symbol-mxnet19.json").write_text(sym.tojson())
    np.savez_compressed(args.out / "reference.npz", **ref)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
