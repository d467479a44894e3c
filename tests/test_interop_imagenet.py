"""ImageNet preprocessing (Caffe and ModelHub presets), class names, and `nin import` end to end."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from _interop import FIX, seeded
from nin.cli import main
from nin.data.imagenet_preprocess import ImageNetPreprocess
from nin.data.preprocess import build_preprocessor, list_preprocessors, preprocessor_from_state
from nin.errors import ConfigError
from nin.interop.labels import imagenet_classes, read_classes
from nin.train.checkpoint import build_from_checkpoint, load_checkpoint


def _photo(w: int, h: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(w * h)
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    a[: h // 2, :, 0] = 250  # some structure, so that geometry mistakes show
    return Image.fromarray(a, "RGB").convert(mode)


def _bilinear(img: Image.Image, h: int, w: int) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32).transpose(2, 0, 1).copy())[None]
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=False)[0].round()


def test_class_names():
    names = imagenet_classes()
    assert len(names) == 1000
    assert names[0] == "tench, Tinca tinca" and names[999] == "toilet tissue, toilet paper, bathroom tissue"
    assert names[134] == names[517] == "crane"  # as in synset_words.txt


def test_labels_file_forms(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"0": "x", "1": "y"}))
    (tmp_path / "b.txt").write_text("x\ny\n")
    assert read_classes(tmp_path / "a.json", 2) == read_classes(tmp_path / "b.txt", 2) == ["x", "y"]
    with pytest.raises(ConfigError, match="holds 2 names; the model has 3"):
        read_classes(tmp_path / "b.txt", 3)


def test_a_saved_preprocess_entry_resolves_from_the_registry_alone():
    """Checkpoints store the recipe by name; every name resolves with nothing imported but the registry."""
    state = {"name": "imagenet", "options": {"preset": "caffe", "order": "bgr"}, "tensors": {"mean": [1.0, 2.0, 3.0]}}
    code = (
        "import json, sys, torch; from nin.data.preprocess import list_preprocessors, preprocessor_from_state; "
        "state = json.loads(sys.argv[1]); "
        "state['tensors'] = {k: torch.tensor(v) for k, v in state['tensors'].items()}; "
        "p = preprocessor_from_state(state); "
        "print(type(p).__name__, p.mean.tolist(), ' '.join(list_preprocessors()))"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(state)], check=True, capture_output=True, text=True)
    kind, rest = out.stdout.split(" ", 1)
    assert kind == "ImageNetPreprocess" and rest.startswith("[1.0, 2.0, 3.0]")
    assert set(rest.split("]", 1)[1].split()) == {"none", "scale", "mean_std", "gcn_zca", "gcn_lcn", "imagenet"}


def test_registered_and_presets():
    assert "imagenet" in list_preprocessors()
    hub = build_preprocessor("imagenet", preset="modelhub")
    assert hub.options() == {
        "preset": "modelhub",
        "order": "rgb",
        "scale": 1.0,
        "mean_mode": "none",
        "resize": "direct",
        "resize_size": 224,
        "resample": "bilinear",
    }
    caffe = build_preprocessor("imagenet")
    assert caffe.order == "bgr" and caffe.mean.tolist() == [104.0, 117.0, 123.0] and caffe.resize == "warp_crop"
    with pytest.raises(ConfigError, match="resize='crop' is not one of"):
        ImageNetPreprocess(resize="crop")
    with pytest.raises(ConfigError, match="unknown imagenet preset"):
        ImageNetPreprocess("torchvision")


def test_apply_order_mean_scale():
    x = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8)
    caffe = ImageNetPreprocess("caffe")
    expected = x.float().flip(1) - torch.tensor([104.0, 117.0, 123.0]).view(1, 3, 1, 1)
    assert torch.equal(caffe(x), expected)
    assert torch.equal(ImageNetPreprocess("modelhub")(x), x.float())
    unit = ImageNetPreprocess("modelhub", scale=1 / 255)
    assert torch.allclose(unit(x), x.float() / 255)
    rgb = ImageNetPreprocess("caffe", order="rgb")  # the mean follows the channel order
    assert torch.equal(rgb(x), x.float() - torch.tensor([123.0, 117.0, 104.0]).view(1, 3, 1, 1))


def test_mean_image_is_centre_cropped_and_survives_the_checkpoint_state():
    pre = ImageNetPreprocess("caffe", order="rgb")
    mean = torch.arange(3 * 256 * 256, dtype=torch.float32).reshape(3, 256, 256) / 1000
    pre.set_mean_image(mean)
    again = preprocessor_from_state(pre.state_dict())
    x = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8)
    assert torch.equal(again(x), x.float() - mean[:, 16:240, 16:240])
    assert again.options() == pre.options() and again.mean_mode == "image"


def test_geometry_of_each_policy():
    img = _photo(300, 200)
    hub = ImageNetPreprocess("modelhub").prepare_image(img, 3, (224, 224))
    assert hub.dtype == torch.uint8 and torch.equal(hub.float(), _bilinear(img, 224, 224))
    warp = ImageNetPreprocess("caffe").prepare_image(img, 3, (224, 224))
    assert torch.equal(warp.float(), _bilinear(img, 256, 256)[:, 16:240, 16:240])
    short = ImageNetPreprocess("caffe", resize="shorter_crop").prepare_image(img, 3, (224, 224))
    assert torch.equal(short.float(), _bilinear(img, 256, 384)[:, 16:240, 80:304])
    lanczos = ImageNetPreprocess("modelhub", resample="lanczos").prepare_image(img, 3, (224, 224))
    assert torch.equal(
        lanczos, torch.from_numpy(np.asarray(img.resize((224, 224), Image.LANCZOS)).transpose(2, 0, 1).copy())
    )
    gray = ImageNetPreprocess("modelhub").prepare_image(_photo(64, 64, "L"), 3, (224, 224))
    assert gray.shape == (3, 224, 224) and torch.equal(gray[0], gray[2])


@pytest.fixture(scope="module")
def mxnet_params(tmp_path_factory):
    manifest = json.loads((FIX / "manifest.json").read_text())
    w = seeded.conv_weights("imagenet", manifest["seeds"]["imagenet"])
    w = [(n, (a[:, ::-1].copy() if n == "conv1" else a), b) for n, a, b in w]
    path = tmp_path_factory.mktemp("hub") / "nin-0000.params"
    path.write_bytes(seeded.ndarray_list(seeded.mxnet_items(w), "V2"))
    return path


def test_import_then_predict_top5(tmp_path, mxnet_params, capsys):
    """`nin import mxnet` -> checkpoint -> the Predictor contract -> top-5 of a photo."""
    out = tmp_path / "nin_imagenet.pt"
    argv = ["import", "mxnet", str(FIX / "nin-symbol.json"), str(mxnet_params), "-o", str(out)]
    assert main([*argv, "--preprocess", "modelhub", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "nin_imagenet" and summary["classes"] == 1000
    ckpt = load_checkpoint(out)
    model = build_from_checkpoint(ckpt)
    pre = preprocessor_from_state(ckpt["preprocess"])
    inp = ckpt["input"]
    photo = _photo(320, 240)
    image = pre.prepare_image(photo, inp["channels"], (inp["height"], inp["width"]))
    x = pre(image[None])
    assert torch.equal(x[0], _bilinear(photo, 224, 224))  # ModelHub: RGB 0-255, resized, no mean
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)[0]
    top = probs.topk(5)
    labels = [ckpt["classes"][i] for i in top.indices]
    assert len(set(labels)) == 5 and all(isinstance(s, str) and s for s in labels)
    assert torch.isclose(probs.sum(), torch.tensor(1.0)) and top.values[0] > 1.5 / 1000
    assert ckpt["source"]["files"][0]["file"] == "nin-symbol.json"


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["import", "mxnet", str(FIX / "nin-symbol.json"), str(tmp_path / "none.params"), "-o", "x.pt"]) == 2
    err = capsys.readouterr().err
    assert "MXNet params file" in err and "does not exist" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "half.caffemodel"
    bad.write_bytes(seeded.ld(2, seeded.ld(4, b"conv1"))[:-2])
    assert main(["import", "caffe", str(bad), "--arch", "nin_imagenet", "-o", str(tmp_path / "y.pt")]) == 2
    err = capsys.readouterr().err
    assert "half.caffemodel is truncated" in err and len(err.strip().splitlines()) == 1
