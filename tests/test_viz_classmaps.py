import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from nin.cli import main
from nin.data.preprocess import build_preprocessor
from nin.data.registry import load_dataset
from nin.errors import ConfigError, DataError
from nin.models import build_model
from nin.serve.predictor import Predictor
from nin.train.checkpoint import build_from_checkpoint, load_checkpoint, make_checkpoint, save_checkpoint
from nin.viz import ClassMapper, classmaps_figure, classmaps_grid, figure_png, save_figure
from nin.viz.figures import parse_classes
from test_viz_support import png_size, trained_run


def _model_and_predictor(name="nin_mnist", shape=(1, 28, 28), k=10, **options):
    torch.manual_seed(0)
    options = {"num_classes": k, "in_channels": shape[0], **options}
    model = build_model(name, **options).eval()
    ckpt = make_checkpoint(
        name, options, model, build_preprocessor("scale").state_dict(), [f"c{i}" for i in range(k)], shape
    )
    return model, Predictor.from_checkpoint_dict(ckpt, "cpu", "fp32")


def _model_and_mapper(name="nin_mnist", shape=(1, 28, 28), k=10):
    model, predictor = _model_and_predictor(name, shape, k, batch_norm=True, init="kaiming")
    return model, ClassMapper(predictor)


def _mapper():
    return _model_and_mapper()[1]


def _plain_forward(model, mapper, x):
    """The model's plain forward pass (``model(x)``), not the maps path the mapper takes."""
    with torch.no_grad():
        return model(mapper.predictor.preprocessor.apply(x))


@pytest.mark.parametrize("name,shape,map_size", [("nin_mnist", (1, 28, 28), 7), ("nin_cifar10", (3, 32, 32), 8)])
def test_map_shapes_and_pooled_scores_equal_the_logits(name, shape, map_size):
    model, mapper = _model_and_mapper(name, shape)
    x = torch.randint(0, 256, (3, *shape), dtype=torch.uint8)
    results = mapper.explain(x)
    assert len(results) == 3
    logits = _plain_forward(model, mapper, x)
    for r, ref in zip(results, logits):
        assert r.maps.shape == (10, map_size, map_size)
        assert r.image.shape == (shape[1], shape[2], 3) and r.image.dtype == np.uint8
        np.testing.assert_allclose(r.maps.mean(axis=(1, 2)), r.logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(r.logits, ref.numpy(), rtol=1e-4, atol=1e-5)
        assert r.pred == int(ref.argmax())
        assert r.probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_fc_ablation_has_no_class_maps():
    with pytest.raises(ConfigError, match="fully connected head"):
        ClassMapper(_model_and_predictor("nin_cifar10_fc", (3, 32, 32))[1])


@pytest.mark.parametrize("mode,size", [("L", (28, 28)), ("RGB", (64, 40)), ("RGBA", (20, 20)), ("P", (100, 90))])
def test_image_files_of_any_mode_are_decoded_to_the_input_size(tmp_path, mode, size):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr, "RGB").convert(mode)
    path = tmp_path / f"x-{mode}.png"
    img.save(path)
    r = _mapper().explain_files([path])[0]
    assert r.name == path.name and r.label is None
    assert r.image.shape == (28, 28, 3)
    overlay = r.overlay(box=True)
    assert overlay.shape == (28, 28, 3) and overlay.dtype == np.uint8


def test_predicted_class_map_has_the_highest_mean_on_a_trained_model(tmp_path_factory):
    run = trained_run(tmp_path_factory)
    mapper = ClassMapper.from_checkpoint(run / "best.pt")
    ds = load_dataset("synthetic_mnist", "test")
    results = mapper.explain_dataset(ds, range(64))
    logits = _plain_forward(build_from_checkpoint(load_checkpoint(run / "best.pt")).eval(), mapper, ds.images[:64])
    for r, ref in zip(results, logits):
        means = r.maps.mean(axis=(1, 2))
        assert int(means.argmax()) == int(ref.argmax())  # the predicted class owns the strongest map
    # and the maps are meaningful: the true class's map is the strongest for most items
    right = sum(int(r.maps.mean(axis=(1, 2)).argmax()) == r.label for r in results)
    assert right >= 0.8 * len(results)


def test_explain_dataset_checks_the_index():
    mapper = _mapper()
    ds = load_dataset("synthetic_mnist", "test")
    with pytest.raises(DataError, match="out of range"):
        mapper.explain_dataset(ds, [len(ds)])


@pytest.mark.parametrize(
    "spec,k,expected", [("all", 10, None), ("top-3", 10, 3), ("top5", 10, 5), ("2", 10, 2), ("auto", 1000, 5)]
)
def test_parse_classes(spec, k, expected):
    assert parse_classes(spec, k) == expected


def test_parse_classes_rejects_nonsense():
    with pytest.raises(ConfigError):
        parse_classes("most", 10)
    with pytest.raises(ConfigError):
        parse_classes("top-0", 10)


def test_figures_are_written_and_show_every_requested_map(tmp_path):
    mapper = _mapper()
    ds = load_dataset("synthetic_mnist", "test")
    results = mapper.explain_dataset(ds, [0, 1])
    fig = classmaps_figure(results, classes="all")
    assert len(fig.axes) == 2 * (2 + 10)  # per row: input, CAM, 10 maps
    titles = {ax.get_title() for ax in fig.axes}
    assert any(t.startswith("c3\n") for t in titles)
    path = save_figure(fig, tmp_path / "maps.png")
    w, h = png_size(path.read_bytes())
    assert w > 600 and h > 150
    top = classmaps_figure(results, classes="top-3")
    assert len(top.axes) == 2 * (2 + 3)
    grid = classmaps_grid(results * 3)
    assert len(grid.axes) == 6
    assert png_size(figure_png(grid))[0] > 200


def test_true_class_is_framed():
    mapper = _mapper()
    ds = load_dataset("synthetic_mnist", "test")
    r = mapper.explain_dataset(ds, [0])[0]
    fig = classmaps_figure([r], classes="all")
    map_axes = fig.axes[2:]
    framed = [i for i, ax in enumerate(map_axes) if ax.spines["left"].get_visible()]
    assert framed == [r.label]


def _fc_checkpoint(path):
    model = build_model("nin_cifar10_fc")
    pre = build_preprocessor("scale")
    save_checkpoint(make_checkpoint("nin_cifar10_fc", {}, model, pre.state_dict(), range(10), (3, 32, 32)), path)
    return path


def test_cli_classmaps_files_and_dataset_items(tmp_path, tmp_path_factory, capsys):
    run = trained_run(tmp_path_factory)
    img = tmp_path / "digit.png"
    Image.fromarray(load_dataset("synthetic_mnist", "test").images[5, 0].numpy(), "L").save(img)
    out = tmp_path / "maps.png"
    argv = [
        "classmaps",
        str(run / "best.pt"),
        str(img),
        "--index",
        "0",
        "1",
        "-o",
        str(out),
        "--classes",
        "top-4",
        "--box",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "digit.png: predicted" in text and "test[1]" in text and "true class" in text
    assert png_size(out.read_bytes())[0] > 300
    assert main(["classmaps", str(run / "best.pt"), "--grid", "6", "-o", str(tmp_path / "g.png")]) == 0
    assert "CAM grid of 6 items" in capsys.readouterr().out
    assert (tmp_path / "g.png").stat().st_size > 1000


def test_cli_classmaps_per_class(tmp_path, tmp_path_factory, capsys):
    run = trained_run(tmp_path_factory)
    assert main(["classmaps", str(run / "best.pt"), "--per-class", "-o", str(tmp_path / "pc.png")]) == 0
    truths = re.findall(r"true (class\d+)", capsys.readouterr().out)
    assert truths == [f"class{i}" for i in range(10)]  # one row per class, in class order
    assert (tmp_path / "pc.png").stat().st_size > 1000


def test_cli_classmaps_pages(tmp_path, tmp_path_factory, capsys):
    run = trained_run(tmp_path_factory)
    out = tmp_path / "m.png"
    argv = ["classmaps", str(run / "last.pt"), "--index", "0", "1", "2", "--per-page", "2", "-o", str(out)]
    assert main(argv) == 0
    assert (tmp_path / "m-1.png").exists() and (tmp_path / "m-2.png").exists() and not out.exists()


@pytest.mark.parametrize(
    "extra,message",
    [
        ([], "nothing to explain"),
        (["--grid", "4", "--index", "1"], "--grid explains"),
        (["--index", "0", "--classes", "many"], "--classes"),
        (["--index", "0", "--alpha", "2"], "--alpha"),
    ],
)
def test_cli_classmaps_user_errors(tmp_path_factory, capsys, extra, message):
    run = trained_run(tmp_path_factory)
    assert main(["classmaps", str(run / "best.pt"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_classmaps_fc_checkpoint_is_a_clear_error(tmp_path, capsys):
    ckpt = _fc_checkpoint(tmp_path / "fc.pt")
    assert load_checkpoint(ckpt)["model"]["name"] == "nin_cifar10_fc"
    assert main(["classmaps", str(ckpt), "--grid", "2", "--dataset", "synthetic_cifar10"]) == 2
    assert "no class maps" in capsys.readouterr().err


def _exif_rotated_digit(tmp_path, tmp_path_factory):
    """A JPEG whose pixels are stored turned a quarter left, with the EXIF tag that tells viewers to turn them back
    (orientation 6), and the upright picture it shows, losslessly as PNG. The picture is a test digit, wider than
    high, so the stored and the shown image differ in shape too."""
    digit = load_dataset("synthetic_mnist", "test").images[3, 0].numpy()
    upright = Image.fromarray(digit, "L").resize((56, 40), Image.BILINEAR)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    jpeg = tmp_path / "turned.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(jpeg, quality=95, exif=exif)
    with Image.open(jpeg) as stored:  # decoded as stored, turned by hand: what a viewer shows
        assert stored.size == (40, 56) and stored.getexif()[0x0112] == 6
        shown = stored.transpose(Image.Transpose.ROTATE_270)
        shown.save(tmp_path / "shown.png")
        stored.save(tmp_path / "stored.png")  # the same pixels without the tag: sideways
    return jpeg, tmp_path / "shown.png", tmp_path / "stored.png"


def test_classmaps_and_predict_agree_on_an_exif_rotated_photo(tmp_path, tmp_path_factory, capsys):
    ckpt = trained_run(tmp_path_factory) / "best.pt"
    jpeg, shown, stored = _exif_rotated_digit(tmp_path, tmp_path_factory)
    predictor = Predictor.from_checkpoint(ckpt, device="cpu", precision="fp32")
    mapper = ClassMapper.from_checkpoint(ckpt, device="cpu", precision="fp32")
    r, upright, sideways = mapper.explain_files([jpeg, shown, stored])
    # The maps are those of the upright picture, and they differ from those of the pixels as stored.
    np.testing.assert_array_equal(r.image, upright.image)
    np.testing.assert_allclose(r.maps, upright.maps, rtol=0, atol=1e-6)
    assert np.abs(r.maps - sideways.maps).max() > 1e-3
    # Same probabilities and top class as the Predictor that serves `nin predict`.
    probs = predictor.probabilities(jpeg)[0].numpy()
    np.testing.assert_allclose(r.probs, probs, rtol=1e-5, atol=1e-6)
    assert r.pred == int(probs.argmax()) == predictor.predict(jpeg).indices[0]
    # And the two commands print the same answer.
    assert main(["predict", str(ckpt), str(jpeg), "--json", "--top-k", "10", "--precision", "fp32"]) == 0
    top = json.loads(capsys.readouterr().out)["predictions"][0]["top"][0]
    assert main(["classmaps", str(ckpt), str(jpeg), "-o", str(tmp_path / "m.png"), "--precision", "fp32"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line == f"turned.jpg: predicted {top['label']} (p={top['probability']:.3f}, score {r.logits[r.pred]:.3f})"
