import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fixtures.serve.builders import digit, make_ckpt, png_bytes, save_ckpt
from nin.cli import main
from nin.data.registry import load_dataset
from nin.errors import CheckpointError
from nin.export import evaluate_file, export_onnx, load_for_eval, quantize_onnx, read_metadata
from nin.export.onnx import PARITY_TOLERANCE, ExportGraph
from nin.serve.predictor import Predictor
from nin.train.checkpoint import build_from_checkpoint, load_checkpoint
from nin.train.evaluate import evaluate
from nin.train.runtime import select_runtime


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory):
    return save_ckpt(tmp_path_factory.mktemp("export") / "m.pt")


@pytest.fixture(scope="module")
def onnx_path(ckpt_path):
    return export_onnx(ckpt_path, ckpt_path.with_suffix(".onnx")).path


def torch_logits(ckpt: dict, pixels: torch.Tensor) -> np.ndarray:
    from nin.data.preprocess import preprocessor_from_state

    model = build_from_checkpoint(ckpt)
    with torch.no_grad():
        return model(preprocessor_from_state(ckpt["preprocess"]).apply(pixels)).numpy()


def test_onnx_parity_with_pytorch_on_real_digits_and_any_batch_size(ckpt_path, onnx_path):
    ckpt = load_checkpoint(ckpt_path)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["pixels"]
    assert [o.name for o in session.get_outputs()] == ["logits", "class_maps"]
    assert session.get_inputs()[0].shape[0] == "batch"  # dynamic batch axis
    images = load_dataset("mnist_embedded", "test").images
    for n in (1, 7, 64):
        pixels = images[:n].float()
        got = session.run(["logits"], {"pixels": pixels.numpy()})[0]
        assert got.shape == (n, 10)
        assert np.abs(got - torch_logits(ckpt, pixels)).max() <= PARITY_TOLERANCE


def test_onnx_class_maps_match_pytorch(ckpt_path, onnx_path):
    ckpt = load_checkpoint(ckpt_path)
    pixels = load_dataset("mnist_embedded", "test").images[:3].float()
    from nin.data.preprocess import preprocessor_from_state

    graph = ExportGraph(build_from_checkpoint(ckpt), preprocessor_from_state(ckpt["preprocess"]), True)
    with torch.no_grad():
        _, want = graph(pixels)
    got = ort.InferenceSession(str(onnx_path)).run(["class_maps"], {"pixels": pixels.numpy()})[0]
    assert got.shape == (3, 10, 7, 7) and np.abs(got - want.numpy()).max() <= PARITY_TOLERANCE


def test_metadata_makes_the_file_self_describing(ckpt_path, onnx_path):
    meta = read_metadata(onnx_path)
    ckpt = load_checkpoint(ckpt_path)
    assert meta["classes"] == ckpt["classes"] and meta["input"] == ckpt["input"]
    assert meta["preprocess"]["name"] == "mean_std" and meta["model"]["name"] == "nin_mnist"
    assert meta["quantization"] is None and meta["class_maps"] is True
    assert onnx.load(str(onnx_path)).producer_name == "nin"


def test_predictor_runs_on_the_onnx_file(ckpt_path, onnx_path):
    pt = Predictor.from_checkpoint(ckpt_path, device="cpu")
    ox = Predictor.from_checkpoint(onnx_path)
    assert ox.backend.kind == "onnx" and ox.classes == pt.classes and ox.input_shape == pt.input_shape
    images = [digit(0), digit(1), digit(2)]
    torch.testing.assert_close(ox.probabilities(images), pt.probabilities(images), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ox.class_maps(images), pt.class_maps(images), atol=1e-4, rtol=1e-4)
    assert [p.labels for p in ox.predict(images)] == [p.labels for p in pt.predict(images)]


def test_classmaps_of_the_onnx_file_match_the_checkpoint(ckpt_path, onnx_path, tmp_path, capsys):
    from nin.viz import ClassMapper

    ds = load_dataset("mnist_embedded", "test")
    pt = ClassMapper.from_checkpoint(ckpt_path).explain_dataset(ds, [0, 1])
    ox = ClassMapper.from_checkpoint(onnx_path).explain_dataset(ds, [0, 1])
    for a, b in zip(pt, ox, strict=True):
        np.testing.assert_allclose(b.maps, a.maps, atol=1e-4, rtol=1e-4)
        assert a.pred == b.pred
    assert main(["classmaps", str(onnx_path), "--index", "0", "-o", str(tmp_path / "m.png")]) == 0
    assert "test[0]: predicted" in capsys.readouterr().out


def test_models_without_class_maps_export_logits_only(tmp_path):
    path = save_ckpt(tmp_path / "fc.pt", model="nin_cifar10_fc", shape=(3, 32, 32), dataset="synthetic_cifar10")
    r = export_onnx(path, tmp_path / "fc.onnx")
    assert not r.class_maps and r.max_abs_diff <= PARITY_TOLERANCE
    outputs = [o.name for o in ort.InferenceSession(str(r.path)).get_outputs()]
    assert outputs == ["logits"]
    assert not Predictor.from_checkpoint(r.path).has_class_maps


def test_a_parity_failure_removes_the_file(tmp_path):
    out = tmp_path / "x.onnx"
    with pytest.raises(CheckpointError, match="differs from PyTorch"):
        export_onnx(make_ckpt(), out, tolerance=-1.0)  # nothing can pass a negative tolerance
    assert not out.exists()


def test_an_export_onnx_runtime_refuses_is_not_kept(tmp_path, monkeypatch):
    import nin.export.onnx

    def refuse(path, threads=0):
        raise CheckpointError(f"{path} is not a loadable ONNX model (unsupported opset)")

    monkeypatch.setattr(nin.export.onnx, "inference_session", refuse)
    out = tmp_path / "x.onnx"
    with pytest.raises(CheckpointError, match=r"ONNX Runtime cannot run the ONNX export .*not kept \(try another"):
        export_onnx(make_ckpt(), out)
    assert not out.exists()


def test_export_cli(ckpt_path, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["export", str(ckpt_path), "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["path"] == str(out) and out.exists()
    assert summary["parity_max_abs_diff"] <= 1e-4 and summary["parity_images"] >= 2
    assert main(["export", str(out)]) == 2  # exporting an export is a user error
    assert "already an ONNX file" in capsys.readouterr().err


def test_eval_hook_gives_the_same_accuracy_for_pt_and_onnx(ckpt_path, onnx_path):
    rt = select_runtime("cpu", "fp32")
    ds = load_dataset("synthetic_mnist", "test")
    results = []
    for path in (ckpt_path, onnx_path):
        ckpt, model, pre = load_for_eval(path, rt)
        assert ckpt["input"] == {"channels": 1, "height": 28, "width": 28}
        results.append(evaluate(model, ds.images, ds.labels, pre, rt))
    assert abs(results[0]["accuracy"] - results[1]["accuracy"]) <= 1 / len(ds)
    assert abs(results[0]["loss"] - results[1]["loss"]) < 1e-4
    assert evaluate_file(onnx_path)["n"] == len(ds)


def test_int8_quantisation(onnx_path, tmp_path):
    calib = load_dataset("mnist_embedded", "train").images[:64]
    check = load_dataset("mnist_embedded", "test").images[:200]
    r = quantize_onnx(onnx_path, tmp_path / "m.int8.onnx", calib, check_images=check)
    meta = read_metadata(r.path)
    assert meta["quantization"]["calibration_images"] == 64 and meta["classes"] == read_metadata(onnx_path)["classes"]
    ops = {n.op_type for n in onnx.load(str(r.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    weights = [i for i in onnx.load(str(r.path)).graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert len(weights) >= 9  # every convolution's weights are int8
    assert r.path.stat().st_size < 0.5 * onnx_path.stat().st_size
    # Quantisation error is small next to the spread of the logits.
    a = ort.InferenceSession(str(onnx_path)).run(["logits"], {"pixels": check.float().numpy()})[0]
    b = ort.InferenceSession(str(r.path)).run(["logits"], {"pixels": check.float().numpy()})[0]
    assert np.abs(a - b).max() < 0.1 * (a.max() - a.min())
    assert r.top1_agreement >= 0.9 and r.n_checked == 200
    p = Predictor.from_checkpoint(r.path)
    assert "int8" in p.describe() and p.predict(digit(0)).label in p.classes
    with pytest.raises(Exception, match="already quantised"):
        quantize_onnx(r.path, tmp_path / "again.onnx", calib)


def test_the_service_serves_an_onnx_file(ckpt_path, onnx_path):
    import warnings

    from nin.serve.app import create_app
    from nin.serve.settings import ServeSettings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    pt = Predictor.from_checkpoint(ckpt_path, device="cpu")
    with TestClient(create_app(ServeSettings(checkpoint=str(onnx_path)))) as c:
        for _ in range(200):  # a file path loads in the background
            if c.get("/readyz").status_code == 200:
                break
            __import__("time").sleep(0.05)
        assert c.get("/api/get_config").json()["model"]["format"] == ".onnx"
        body = c.post("/api/predict?class_map=true", files={"file": ("d.png", png_bytes(digit(9)), "image/png")}).json()
        got = torch.tensor([row["probability"] for row in body["output"][0]["prediction"]])
        torch.testing.assert_close(got, pt.probabilities(digit(9))[0], atol=1e-5, rtol=1e-4)
        assert body["class_map"]["map_size"] == [7, 7]


def test_calibration_images_from_a_folder_use_the_models_preparation(onnx_path, tmp_path):
    from nin.export import calibration_images

    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(png_bytes(np.full((50, 40, 3), 60 * i, dtype=np.uint8)))
    (tmp_path / "notes.txt").write_text("ignored")
    x = calibration_images(read_metadata(onnx_path), 10, image_dir=tmp_path)
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.uint8
    assert [int(v) for v in x.flatten(1).float().mean(1)] == [0, 60, 120]
    with pytest.raises(Exception, match="no dataset"):
        calibration_images({**read_metadata(onnx_path), "train": {}}, 10)
