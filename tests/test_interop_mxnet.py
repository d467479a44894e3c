"""ModelHub's real MXNet graph with seeded weights in every .params layout must give MXNet's own outputs."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _interop import FIX, MANIFEST, REF, seeded
from nin.errors import DataError
from nin.interop.importer import import_mxnet
from nin.train.checkpoint import build_from_checkpoint

SYMBOLS = [FIX / "nin-symbol.json", FIX / "nin-symbol-mxnet19.json"]


@pytest.fixture(scope="module")
def weights_rgb():
    # As MXNet's Caffe converter (and the fixture script) did: conv1 takes RGB.
    w = seeded.conv_weights("imagenet", MANIFEST["seeds"]["imagenet"])
    return [(n, (wt[:, ::-1].copy() if n == "conv1" else wt), b) for n, wt, b in w]


@pytest.fixture(scope="module")
def x_rgb():
    inp = MANIFEST["inputs"]["imagenet"]
    x = seeded.inputs(MANIFEST["seeds"]["imagenet"], inp["n"], (3, 224, 224), inp["amplitude"])
    return torch.from_numpy(np.ascontiguousarray(x[:, ::-1]))


@pytest.fixture(scope="module")
def params_file(tmp_path_factory, weights_rgb):
    """Rebuild a .params file of the manifest; it must be byte-identical to what MXNet wrote (or read)."""
    folder = tmp_path_factory.mktemp("params")

    def build(name: str) -> Path:
        entry = MANIFEST["files"][name]
        data = seeded.ndarray_list(seeded.mxnet_items(weights_rgb, entry["dtype"]), entry["layout"])
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], f"{name} differs from the file MXNet made"
        path = folder / name
        path.write_bytes(data)
        return path

    return build


def _probs(ckpt, x):
    model = build_from_checkpoint(ckpt)
    with torch.no_grad():
        return torch.softmax(model(x), dim=1).numpy()


@pytest.fixture(scope="module")
def v2_checkpoint(params_file):
    return import_mxnet(SYMBOLS[0], params_file("nin-v2.params"))


def test_modelhub_graph_gives_mxnets_outputs(v2_checkpoint, x_rgb):
    probs = _probs(v2_checkpoint, x_rgb)
    assert np.abs(probs - REF["mxnet_probs"]).max() <= 1e-4
    assert (probs.argmax(1) == REF["mxnet_probs"].argmax(1)).all()
    assert v2_checkpoint["model"]["name"] == "nin_imagenet" and len(v2_checkpoint["classes"]) == 1000
    assert v2_checkpoint["source"]["layout"] == "V2"


@pytest.mark.parametrize(
    "name,symbol",
    [("nin-legacy.params", 0), ("nin-v1.params", 1), ("nin-v3.params", 0), ("nin-v2-f64.params", 1)],
)
def test_every_layout_and_symbol_form_gives_the_same_weights(name, symbol, params_file, v2_checkpoint):
    """Same weights as the V2 import, whose outputs are checked against MXNet's above."""
    path = params_file(name)
    ckpt = import_mxnet(SYMBOLS[symbol], path)
    entry = MANIFEST["files"][name]
    assert ckpt["source"]["layout"] == entry["layout"]
    assert ckpt["source"]["dtypes"] == [str(np.dtype(entry["dtype"]))]
    assert ckpt["source"]["files"][1]["md5"] == hashlib.md5(path.read_bytes()).hexdigest()
    for key, value in v2_checkpoint["state_dict"].items():
        assert torch.equal(ckpt["state_dict"][key], value), key


def test_half_precision_params(params_file, x_rgb):
    ckpt = import_mxnet(SYMBOLS[1], params_file("nin-v2-f16.params"))
    assert ckpt["source"]["dtypes"] == ["float16"]
    probs = _probs(ckpt, x_rgb)
    assert np.abs(probs - REF["mxnet_probs_f16"]).max() <= 1e-4
    # float16 weights really change the outputs: the comparison above can tell the two apart.
    assert np.abs(REF["mxnet_probs_f16"] - REF["mxnet_probs"]).max() > 1e-4


def test_logits_match_before_softmax(v2_checkpoint, x_rgb):
    model = build_from_checkpoint(v2_checkpoint)
    with torch.no_grad():
        logits = model(x_rgb).numpy()
    assert np.abs(logits - REF["mxnet_logits"]).max() <= 1e-3 * max(1.0, float(np.abs(REF["mxnet_logits"]).max()))


def test_swapped_input_channels_do_not_match(v2_checkpoint, x_rgb):
    """The tolerance is tight enough to catch a BGR/RGB mix-up."""
    probs = _probs(v2_checkpoint, x_rgb.flip(1))
    assert np.abs(probs - REF["mxnet_probs"]).max() > 1e-2


def _edit_symbol(tmp_path, edit) -> Path:
    graph = json.loads(SYMBOLS[0].read_text())
    edit({n["name"]: n for n in graph["nodes"]})
    path = tmp_path / "edited-symbol.json"
    path.write_text(json.dumps(graph))
    return path


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda n: n["pool2"]["param"].update(pooling_convention="valid"), "'pool2' rounds its output size down"),
        (lambda n: n["conv2"]["param"].update(kernel="(3,3)"), "layer 'conv2' has kernel (3, 3)"),
        (lambda n: n["pool1"]["param"].update(pool_type="avg"), "pooling layer 'pool1' is avg"),
        (lambda n: n["relu5"]["param"].update(act_type="sigmoid"), "'relu5' is a sigmoid activation"),
        (lambda n: n["cccp8_1024"]["param"].update(num_filter="10"), "'cccp8_1024' has outputs 10"),
    ],
)
def test_graph_that_is_not_nin_is_refused_before_weights(tmp_path, edit, message):
    # No params file exists: the graph check must fail first.
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_mxnet(_edit_symbol(tmp_path, edit), tmp_path / "absent.params")


def test_wrong_arch_is_named(tmp_path, params_file):
    with pytest.raises(DataError, match=r"is not nin_cifar10: unexpected conv4_1024.*pass --arch nin_imagenet"):
        import_mxnet(SYMBOLS[0], params_file("nin-v2.params"), "nin_cifar10")


def test_params_of_another_net(tmp_path, weights_rgb):
    items = seeded.mxnet_items(weights_rgb)
    items[6] = ("arg:conv2_weight", np.zeros((64, 96, 3, 3), np.float32))
    bad = tmp_path / "other.params"
    bad.write_bytes(seeded.ndarray_list(items, "V2"))
    with pytest.raises(DataError, match=r"layer 'conv2' weight has shape \(64, 96, 3, 3\)"):
        import_mxnet(SYMBOLS[0], bad)
    bad.write_bytes(seeded.ndarray_list(items[:20], "V2"))
    with pytest.raises(DataError, match="has no array 'cccp7_1024_weight'"):
        import_mxnet(SYMBOLS[0], bad)


def test_swapped_arguments_are_explained(tmp_path, params_file):
    with pytest.raises(DataError, match="not an MXNet symbol JSON"):
        import_mxnet(params_file("nin-v2.params"), SYMBOLS[0])
