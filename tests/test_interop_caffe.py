"""Caffe .caffemodel import: files serialised by protobuf, outputs from an independent numpy forward pass."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from _interop import MANIFEST, REF, seeded
from nin.errors import ConfigError, DataError
from nin.interop.caffe import read_mean_binaryproto
from nin.interop.importer import import_caffe
from nin.train.checkpoint import build_from_checkpoint


@pytest.fixture(scope="module")
def weights():
    return {arch: seeded.conv_weights(arch, seed) for arch, seed in MANIFEST["seeds"].items()}


def _inputs(arch):
    inp = MANIFEST["inputs"][arch]
    size = (3, 224, 224) if arch == "imagenet" else (3, 32, 32)
    return torch.from_numpy(seeded.inputs(MANIFEST["seeds"][arch], inp["n"], size, inp["amplitude"]))


@pytest.fixture(scope="module")
def caffe_file(tmp_path_factory, weights):
    """Rebuild a .caffemodel of the manifest; it must be byte-identical to protobuf's serialisation."""
    folder = tmp_path_factory.mktemp("caffe")

    def build(name: str) -> Path:
        entry = MANIFEST["files"][name]
        arch, packed, layout, legacy, wrong, doubles = entry["args"]
        data = seeded.caffemodel(arch, weights[arch], layout, packed, legacy, wrong, tuple(doubles))
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], f"{name} differs from protobuf's bytes"
        path = folder / name
        path.write_bytes(data)
        return path

    return build


def _logits(ckpt, x):
    with torch.no_grad():
        return build_from_checkpoint(ckpt)(x).numpy()


@pytest.mark.parametrize("name", ["cifar10_v2.caffemodel", "cifar10_v1_unpacked.caffemodel"])
def test_cifar10_matches_the_reference(name, caffe_file):
    ckpt = import_caffe(caffe_file(name), "nin_cifar10")
    # The file's pools average after block 2: the Model Zoo variant is picked from the file itself.
    assert ckpt["model"]["name"] == "nin_cifar10_caffe"
    assert ckpt["classes"][0] == "airplane" and len(ckpt["classes"]) == 10
    assert ckpt["source"]["layout"] == ("V2" if "v2" in name else "V1")
    assert not ckpt["source"]["conv1_flipped_to_rgb"]
    logits = _logits(ckpt, _inputs("cifar10"))
    assert np.abs(logits - REF["caffe_cifar10_logits"]).max() <= 1e-4


def test_pool_type_decides_between_the_cifar10_variants(tmp_path, weights, monkeypatch):
    monkeypatch.setitem(seeded.CIFAR10_POOLS, "cccp4", (0, 3, 2))  # max after block 2: the paper's net
    path = tmp_path / "paper.caffemodel"
    path.write_bytes(seeded.caffemodel("cifar10", weights["cifar10"], "V2", True, False))
    assert import_caffe(path, "nin_cifar10")["model"]["name"] == "nin_cifar10"
    with pytest.raises(DataError, match=r"pooling layer 'pool2' is max \(3, 3\)/\(2, 2\); nin_cifar10_caffe has"):
        import_caffe(path, "nin_cifar10_caffe")


@pytest.fixture(scope="module")
def imagenet_rgb(caffe_file):
    return import_caffe(caffe_file("imagenet_v1_legacy.caffemodel"), "nin_imagenet")


def test_imagenet_legacy_dims_are_reshaped_and_conv1_flipped(imagenet_rgb):
    src = imagenet_rgb["source"]
    assert src["layout"] == "V1" and src["conv1_flipped_to_rgb"] and src["stored_input_order"] == "bgr"
    assert len(src["reshaped_layers"]) == 12  # every weight was stored as (1, 1, out, in*k*k)
    pre = imagenet_rgb["preprocess"]
    assert pre["name"] == "imagenet" and pre["options"]["order"] == "rgb"
    assert pre["tensors"]["mean"].tolist() == [123.0, 117.0, 104.0]  # Caffe's BGR mean, flipped with conv1
    x_bgr = _inputs("imagenet")
    logits = _logits(imagenet_rgb, x_bgr.flip(1))  # the RGB view of the reference's BGR inputs
    ref = REF["caffe_imagenet_logits"]
    assert np.abs(logits - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))
    e = np.exp(logits - logits.max(1, keepdims=True))
    probs = e / e.sum(1, keepdims=True)
    assert np.abs(probs - REF["mxnet_probs"]).max() <= 1e-4  # and MXNet agrees


def test_keep_bgr_records_bgr_and_gives_the_same_outputs(caffe_file, imagenet_rgb):
    ckpt = import_caffe(caffe_file("imagenet_v1_legacy.caffemodel"), "nin_imagenet", keep_bgr=True)
    assert ckpt["preprocess"]["options"]["order"] == "bgr"
    assert ckpt["preprocess"]["tensors"]["mean"].tolist() == [104.0, 117.0, 123.0]
    w_bgr, w_rgb = ckpt["state_dict"]["mlpconv1.conv1.weight"], imagenet_rgb["state_dict"]["mlpconv1.conv1.weight"]
    assert torch.equal(w_bgr, w_rgb.flip(1)) and not torch.equal(w_bgr, w_rgb)
    for key in ckpt["state_dict"]:
        if "conv1." not in key:
            assert torch.equal(ckpt["state_dict"][key], imagenet_rgb["state_dict"][key])


def test_mean_file_is_flipped_with_conv1(tmp_path, caffe_file):
    mean = (seeded.uniform(5, 0, 3 * 256 * 256) * np.float32(20) + np.float32(115)).reshape(3, 256, 256)
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(seeded.mean_binaryproto(mean))
    assert np.array_equal(read_mean_binaryproto(path), mean)
    ckpt = import_caffe(caffe_file("imagenet_v1_legacy.caffemodel"), "nin_imagenet", mean=path)
    pre = ckpt["preprocess"]
    assert pre["options"]["mean_mode"] == "image"
    assert np.array_equal(pre["tensors"]["mean"].numpy(), mean[::-1])  # BGR file, RGB network
    assert ckpt["source"]["files"][1]["file"] == "mean.binaryproto"


def test_the_real_mean_file_format(tmp_path):
    """A mean file exactly as protobuf serialises it (sha256 recorded by the fixture script)."""
    mean = seeded.uniform(MANIFEST["seeds"]["imagenet"], 2000, 3 * 256 * 256) * np.float32(20) + np.float32(115)
    data = seeded.mean_binaryproto(mean.reshape(3, 256, 256))
    assert hashlib.sha256(data).hexdigest() == MANIFEST["files"]["mean.binaryproto"]["sha256"]


def test_wrong_arch_suggests_the_right_one(caffe_file):
    with pytest.raises(DataError, match=r"is not nin_imagenet: missing conv4_1024.*pass --arch nin_cifar10"):
        import_caffe(caffe_file("cifar10_v2.caffemodel"), "nin_imagenet")
    with pytest.raises(ConfigError, match="unknown architecture 'resnet'"):
        import_caffe(caffe_file("cifar10_v2.caffemodel"), "resnet")


def _cifar_layers(weights, edit):
    w = [list(t) for t in weights["cifar10"]]
    edit(w)
    return seeded.caffemodel("cifar10", [tuple(t) for t in w], "V2", True, False)


def test_missing_layer_and_shape_mismatch_name_the_layer(tmp_path, weights):
    path = tmp_path / "bad.caffemodel"
    # cccp5 stored with the wrong number of values
    path.write_bytes(_cifar_layers(weights, lambda w: w[7].__setitem__(1, w[7][1][:, :100])))
    with pytest.raises(DataError, match=r"layer 'cccp5' weight has shape \(192, 100, 1, 1\)"):
        import_caffe(path, "nin_cifar10")
    # cccp3's weights dropped: the layer is still in the net, but has no blobs
    path.write_bytes(_cifar_layers(weights, lambda w: w.__setitem__(4, ["gone", w[4][1], w[4][2]])))
    with pytest.raises(DataError, match="no weights for layer 'cccp3'"):
        import_caffe(path, "nin_cifar10")


def test_truncated_file_names_the_layer(tmp_path, caffe_file):
    data = caffe_file("cifar10_v2.caffemodel").read_bytes()
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.caffemodel is truncated: layer #\d+ \('\w+'\) needs"):
        import_caffe(cut, "nin_cifar10")


def test_prototxt_is_checked_and_its_transform_recorded(tmp_path, caffe_file):
    text = ['name: "nin_imagenet"', 'layers { name: "data" type: DATA top: "data" top: "label"']
    text.append("  transform_param { crop_size: 224 mean_value: 104 mean_value: 117 mean_value: 123 } }")
    for layer in seeded.net_layers("imagenet"):
        kind = {"Convolution": "CONVOLUTION", "ReLU": "RELU", "Pooling": "POOLING", "Dropout": "DROPOUT"}
        kind = kind.get(layer["type"], "SOFTMAX_LOSS")
        body = f'name: "{layer["name"]}" type: {kind} bottom: "{layer["bottom"]}" top: "{layer["top"]}"'
        if "conv" in layer:
            o, pad, k, stride = layer["conv"]
            body += f" convolution_param {{ num_output: {o} pad: {pad} kernel_size: {k} stride: {stride} }}"
        if "pool" in layer:
            method, k, stride = layer["pool"]
            body += f" pooling_param {{ pool: {['MAX', 'AVE'][method]} kernel_size: {k} stride: {stride} }}"
        text.append(f"layers {{ {body} }}  # {layer['type']}")
    proto = tmp_path / "train_val.prototxt"
    proto.write_text("\n".join(text))
    ckpt = import_caffe(caffe_file("imagenet_v1_legacy.caffemodel"), "nin_imagenet", prototxt=proto)
    assert ckpt["preprocess"]["tensors"]["mean"].tolist() == [123.0, 117.0, 104.0]
    assert [f["file"] for f in ckpt["source"]["files"]] == ["imagenet_v1_legacy.caffemodel", "train_val.prototxt"]
    proto.write_text(
        "\n".join(text).replace("pool: MAX kernel_size: 3 stride: 2", "pool: MAX kernel_size: 2 stride: 2", 1)
    )
    with pytest.raises(DataError, match=r"train_val.prototxt: pooling layer 'pool1' is max \(2, 2\)"):
        import_caffe(caffe_file("imagenet_v1_legacy.caffemodel"), "nin_imagenet", prototxt=proto)
