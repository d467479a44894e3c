import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fixtures.serve.builders import bomb_png, digit, make_ckpt, png_bytes, save_ckpt
from nin.cli import main
from nin.data.images import ImageDecodeError, ImageTooLarge, UnsupportedImageType, open_image, to_mode, to_pil
from nin.data.preprocess import Preprocessor, list_preprocessors, preprocessor_from_state, register_preprocessor
from nin.errors import CheckpointError, ConfigError, DataError
from nin.serve.predictor import Prediction, Predictor
from nin.train.checkpoint import build_from_checkpoint


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory):
    return save_ckpt(tmp_path_factory.mktemp("pred") / "m.pt")


@pytest.fixture(scope="module")
def predictor(ckpt_path):
    return Predictor.from_checkpoint(ckpt_path, device="cpu")


@pytest.fixture(scope="module")
def rgb_predictor(tmp_path_factory):
    path = save_ckpt(tmp_path_factory.mktemp("rgb") / "rgb.pt", shape=(3, 28, 28), classes=list("abcdefghij"))
    return Predictor.from_checkpoint(path, device="cpu")


def reference_probs(ckpt: dict, pixels: torch.Tensor) -> torch.Tensor:
    """The model and preprocessing rebuilt by hand, without Predictor."""
    model = build_from_checkpoint(ckpt)
    pre = preprocessor_from_state(ckpt["preprocess"])
    with torch.no_grad():
        return torch.softmax(model(pre.apply(pixels)), 1)


def test_rebuilds_model_preprocessing_and_classes(ckpt_path, predictor):
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert predictor.classes == ckpt["classes"]
    assert predictor.input_shape == (1, 28, 28)
    assert predictor.info.preprocess == "mean_std"
    x = torch.from_numpy(np.stack([digit(i) for i in range(4)]))[:, None]  # (4, 1, 28, 28) uint8
    got = predictor.probabilities(x)
    torch.testing.assert_close(got, reference_probs(ckpt, x), atol=1e-5, rtol=1e-4)
    assert torch.allclose(got.sum(1), torch.ones(4), atol=1e-5)


def test_every_input_kind_gives_the_same_answer(predictor, tmp_path):
    d = digit(3)
    path = tmp_path / "d.png"
    path.write_bytes(png_bytes(d))
    kinds = {
        "path": path,
        "str path": str(path),
        "bytes": png_bytes(d),
        "PIL L": Image.fromarray(d),
        "numpy HW": d,
        "numpy HWC": d[:, :, None],
        "numpy CHW": d[None],
        "numpy float 0-1": d.astype(np.float32) / 255,
        "numpy float 0-255": d.astype(np.float64) * 1.0,
        "numpy uint16": d.astype(np.uint16) * 257,
        "tensor CHW uint8": torch.from_numpy(d)[None],
        "tensor HW": torch.from_numpy(d),
        "tensor float 0-1": torch.from_numpy(d)[None].float() / 255,
    }
    want = predictor.probabilities(d)
    for name, image in kinds.items():
        got = predictor.probabilities(image)
        assert got.shape == (1, 10), name
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5, msg=name)


def test_single_vs_batched(predictor):
    d0, d1 = digit(0), digit(1)
    single = predictor.predict(d0, top_k=3)
    assert isinstance(single, Prediction) and len(single.labels) == 3
    assert single.probabilities == sorted(single.probabilities, reverse=True)
    assert single.label == single.labels[0] and single.probability == single.probabilities[0]
    batch = predictor.predict([d0, Image.fromarray(d1)], top_k=3)
    assert isinstance(batch, list) and len(batch) == 2
    assert batch[0].labels == single.labels
    stacked = predictor.predict(torch.from_numpy(np.stack([d0, d1]))[:, None])  # a 4-D tensor is a batch
    assert [p.labels for p in stacked] == [p.labels for p in predictor.predict([d0, d1])]
    nhwc = predictor.predict(np.stack([d0, d1])[..., None])  # a 4-D array too
    assert len(nhwc) == 2
    everything = predictor.predict(d0, top_k=99)
    assert sorted(everything.indices) == list(range(10))
    assert abs(sum(everything.probabilities) - 1) < 1e-5
    with pytest.raises(ConfigError, match="top_k"):
        predictor.predict(d0, top_k=0)
    with pytest.raises(DataError, match="no images"):
        predictor.predict([])


def _base_rgb() -> Image.Image:
    a = np.zeros((40, 30, 3), dtype=np.uint8)
    a[..., 0] = np.linspace(0, 255, 30, dtype=np.uint8)[None, :]
    a[..., 1] = np.linspace(255, 0, 40, dtype=np.uint8)[:, None]
    a[10:30, 5:25, 2] = 200
    return Image.fromarray(a)


@pytest.mark.parametrize(
    "mode", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "HSV", "LAB", "I", "I;16", "F"]
)
def test_every_pil_mode_predicts(mode, predictor, rgb_predictor):
    img = _base_rgb()
    if mode in ("I", "I;16", "F"):
        img = img.convert("L").convert(mode)
    elif mode == "PA":
        img = img.convert("P").convert("PA")
    else:
        img = img.convert(mode)
    for p in (predictor, rgb_predictor):
        pred = p.predict(img)
        assert abs(sum(p.predict(img, top_k=10).probabilities) - 1) < 1e-5
        assert pred.label in p.classes


def test_alpha_and_palette_transparency_composite_on_white():
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.all(np.asarray(to_mode(clear, 3)) == 255)
    assert np.all(np.asarray(to_mode(clear.convert("LA"), 1)) == 255)
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.info["transparency"] = 0
    assert np.all(np.asarray(to_mode(pal, 1)) == 255)
    half = Image.new("RGBA", (2, 2), (0, 0, 0, 128))
    assert np.all(np.abs(np.asarray(to_mode(half, 3)).astype(int) - 127) <= 1)


def test_cmyk_uses_the_multiplicative_formula():
    cmyk = Image.new("CMYK", (2, 2), (0, 0, 0, 0))
    assert np.all(np.asarray(to_mode(cmyk, 3)) == 255)  # no ink: white
    black = Image.new("CMYK", (2, 2), (0, 0, 0, 255))
    assert np.all(np.asarray(to_mode(black, 3)) == 0)
    cyan_half_k = Image.new("CMYK", (1, 1), (255, 0, 0, 128))
    assert tuple(np.asarray(to_mode(cyan_half_k, 3))[0, 0]) == (0, 127, 127)


def test_16_bit_and_float_images_scale_from_their_range(tmp_path):
    a16 = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(a16).save(path)  # a 16-bit grayscale PNG
    img = open_image(path)
    assert img.mode in ("I", "I;16")
    assert np.asarray(to_mode(img, 1)).tolist() == [[0, 128, 255]]
    f01 = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert np.asarray(to_mode(f01, 1)).tolist() == [[0, 128, 255]]
    assert np.asarray(to_pil(a16)).tolist() == [[0, 128, 255]]
    weird = np.array([[-5.0, 5.0]])  # outside any nominal range: stretched
    assert np.asarray(to_pil(weird)).tolist() == [[0, 255]]
    with pytest.raises(DataError, match="NaN"):
        to_pil(np.array([[np.nan, 1.0]]))


def test_exif_orientation_is_applied(tmp_path, predictor):
    img = Image.fromarray(np.zeros((10, 30), dtype=np.uint8))  # 30 wide, 10 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = png_bytes(img, "JPEG", exif=exif.tobytes())
    assert open_image(data).size == (10, 30)
    assert predictor.load(Image.open(__import__("io").BytesIO(data))).size == (10, 30)


def test_first_frame_of_an_animation():
    frames = [Image.new("L", (8, 8), v) for v in (10, 200)]
    buf = __import__("io").BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert np.asarray(to_mode(open_image(buf.getvalue()), 1)).max() <= 20


def test_bad_images_raise_clear_errors(tmp_path):
    with pytest.raises(UnsupportedImageType):
        open_image(b"definitely not an image")
    with pytest.raises(UnsupportedImageType):  # a real format, but not an accepted one
        open_image(png_bytes(Image.new("RGB", (4, 4)), "PDF"))
    truncated = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)))
    with pytest.raises(ImageDecodeError):
        open_image(truncated[: len(truncated) // 2])
    with pytest.raises(DataError, match="does not exist"):
        open_image(tmp_path / "missing.png")


def test_size_caps_are_checked_before_decoding():
    with pytest.raises(ImageTooLarge):  # Pillow's own bomb guard (over 2x its pixel limit)
        open_image(bomb_png(50_000, 50_000))
    with pytest.raises(ImageTooLarge, match="limit"):  # under Pillow's limit, over ours
        open_image(bomb_png(9_000, 9_000))
    with pytest.raises(ImageTooLarge, match="a side"):
        open_image(bomb_png(20_000, 10), max_side=12_000)


def test_class_maps_upsampled_to_the_input(predictor):
    maps = predictor.class_maps([digit(0), digit(1)])
    assert maps.shape == (2, 10, 28, 28) and torch.isfinite(maps).all()
    pixels, _ = predictor.prepare([digit(0)])
    logits, raw = predictor.run(pixels, maps=True)
    assert raw.shape == (1, 10, 7, 7)
    torch.testing.assert_close(raw.mean(dim=(2, 3)), logits, atol=1e-5, rtol=1e-5)  # GAP of the maps = logits
    # Upsampling keeps each class's ranking of locations: the hottest raw cell stays hot.
    k = int(logits.argmax())
    r, c = divmod(int(raw[0, k].argmax()), 7)
    assert maps[0, k, 4 * r + 2, 4 * c + 2] >= maps[0, k].median()


def test_fc_models_have_no_class_maps(tmp_path):
    path = save_ckpt(tmp_path / "fc.pt", model="nin_cifar10_fc", shape=(3, 32, 32), dataset="synthetic_cifar10")
    p = Predictor.from_checkpoint(path, device="cpu")
    assert not p.has_class_maps
    assert p.predict(digit(0)).label in p.classes
    with pytest.raises(ConfigError, match="no class maps"):
        p.class_maps(digit(0))


class _RecordingCrop(Preprocessor):
    """Stands in for a recipe with its own geometry (ImageNet: crop, BGR) to check the contract."""

    name = "test_recording_crop"
    calls: list[tuple] = []  # noqa: RUF012

    def prepare_image(self, image, channels, size):
        _RecordingCrop.calls.append((image.size, channels, tuple(size)))
        from nin.data.images import pil_to_tensor

        w, h = image.size
        return pil_to_tensor(image.crop((0, 0, w // 2, h // 2)), channels, size)  # top-left quarter

    def _apply(self, x, t):
        return x / 255.0


if _RecordingCrop.name not in list_preprocessors():
    register_preprocessor(_RecordingCrop)


def test_predictor_goes_through_prepare_image_then_apply(tmp_path):
    path = save_ckpt(tmp_path / "crop.pt", preprocess=_RecordingCrop.name)
    p = Predictor.from_checkpoint(path, device="cpu")
    img = np.zeros((56, 56), dtype=np.uint8)
    img[:28, :28] = 255  # only the top-left quarter is white
    _RecordingCrop.calls.clear()
    pixels, _ = p.prepare(img)
    assert _RecordingCrop.calls == [((56, 56), 1, (28, 28))]
    assert int(pixels.min()) == 255  # the crop, not a resize of the whole image
    ckpt = torch.load(path, weights_only=True)
    torch.testing.assert_close(p.probabilities(img), reference_probs(ckpt, pixels), atol=1e-5, rtol=1e-4)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        Predictor.from_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "x.pt").write_bytes(b"\x00" * 50)
    with pytest.raises(CheckpointError):
        Predictor.from_checkpoint(tmp_path / "x.pt")


def test_lazy_top_level_export():
    code = "import sys, nin; assert 'torch' not in sys.modules; P = nin.Predictor; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    import nin

    assert nin.Predictor is Predictor
    with pytest.raises(AttributeError):
        nin.NotAThing  # noqa: B018


def test_cli_predict_table_and_json(ckpt_path, predictor, tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    a.write_bytes(png_bytes(digit(0)))
    b.write_bytes(png_bytes(digit(1), "JPEG", quality=95))
    assert main(["predict", str(ckpt_path), str(a), str(b), "--top-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in out["predictions"]] == [str(a), str(b)]
    assert [t["label"] for t in out["predictions"][0]["top"]] == predictor.predict(a, top_k=3).labels
    assert main(["predict", str(ckpt_path), str(a)]) == 0
    table = capsys.readouterr().out
    assert str(a) in table and table.count("%") == 5


def test_cli_predict_bad_file_is_reported_and_fails(ckpt_path, tmp_path, capsys):
    bad, good = tmp_path / "notes.txt", tmp_path / "ok.png"
    bad.write_text("hello")
    good.write_bytes(png_bytes(digit(0)))
    assert main(["predict", str(ckpt_path), str(bad), str(good)]) == 1  # some rows failed
    captured = capsys.readouterr()
    assert "not an image" in captured.err and "Traceback" not in captured.err
    assert str(good) in captured.out  # the good file was still classified


def test_from_checkpoint_dict_matches_file(ckpt_path, predictor):
    ckpt = make_ckpt()
    p = Predictor.from_checkpoint_dict(ckpt, device="cpu")
    torch.testing.assert_close(p.probabilities(digit(5)), predictor.probabilities(digit(5)))


def test_large_batches_run_in_slices_with_the_same_answers(predictor):
    """A batch larger than the runtime's eval_batch is cut into slices (faster on a CPU); answers do not change."""
    from nin.data.embedded import load_embedded_mnist

    pixels = load_embedded_mnist("test").images[:150]
    step = predictor.backend.runtime.eval_batch
    assert step < 150
    logits, maps = predictor.run(pixels, maps=True)
    assert logits.shape == (150, 10) and maps.shape == (150, 10, 7, 7)
    one_by_one = torch.cat([predictor.run(pixels[i : i + 1])[0] for i in range(150)])
    torch.testing.assert_close(logits, one_by_one, atol=1e-5, rtol=1e-5)
