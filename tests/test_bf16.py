"""bf16 forced through every inference entry point and a few training steps, on every machine.

Where the CPU has no native bf16 (AVX2 only) PyTorch emulates it: slow but the same arithmetic, so a bug that only
shows in bf16 shows here too. Inputs are kept small for that reason.

Why these tolerances: bf16 keeps 8 significant bits, so every value a layer reads is rounded by up to 2^-9
relative; weights are rounded too. nin_mnist has 9 convolutions, each accumulating in fp32 over rounded inputs and
weights, so the error of a map or a logit grows to about depth x 2^-8 of the tensor's scale: 9/256 = 3.5%
(measured on this model: logits 1.1%, class maps 2.1% of their largest magnitude). Softmax moves a probability
by at most half of the largest logit change (its Jacobian's rows sum to 2 p (1 - p) <= 1/2), and the top class can
only change where the fp32 margin between the first two logits is below twice the logit tolerance.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from _tiny import tiny_cfg
from fixtures.serve.builders import png_bytes, save_ckpt
from nin.cli import main
from nin.data.embedded import load_embedded_mnist
from nin.export import export_onnx
from nin.serve.predictor import Predictor
from nin.train import train
from nin.train.runtime import select_runtime

DEPTH = 9  # convolutions of nin_mnist: 3 mlpconv blocks of 3
REL_TOL = DEPTH * 2.0**-8  # of the tensor's largest magnitude
N = 16  # images per check: bf16 is emulated (slow) on AVX2-only CPUs


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory):
    return save_ckpt(tmp_path_factory.mktemp("bf16") / "m.pt", dataset="mnist_embedded")


@pytest.fixture(scope="module")
def images():
    return load_embedded_mnist("test").images[:N]


@pytest.fixture(scope="module")
def fp32(ckpt_path):
    return Predictor.from_checkpoint(ckpt_path, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def bf16(ckpt_path):
    return Predictor.from_checkpoint(ckpt_path, device="cpu", precision="bf16")


def assert_bf16_close(got: torch.Tensor, want: torch.Tensor) -> None:
    scale = want.abs().max().item()
    err = (got - want).abs().max().item()
    assert err <= REL_TOL * scale, f"bf16 off by {err:.4g}, allowed {REL_TOL * scale:.4g}"
    assert err > 0, "identical to fp32: bf16 did not run"


def assert_top1_agrees(got_logits: torch.Tensor, want_logits: torch.Tensor) -> None:
    top2 = want_logits.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 2 * REL_TOL * want_logits.abs().max()
    assert clear.float().mean() >= 0.5, "too few clear-cut images for the agreement check to mean anything"
    assert torch.equal(got_logits.argmax(1)[clear], want_logits.argmax(1)[clear])


def test_inference_defaults_to_fp32_even_where_bf16_is_native(monkeypatch, ckpt_path):
    from nin.train import runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)  # a Zen 4 / Sapphire Rapids CPU
    assert runtime.select_runtime("cpu").amp_dtype == torch.bfloat16  # training's auto takes it
    assert runtime.inference_runtime("cpu").amp_dtype is None  # inference does not, unless asked
    assert runtime.inference_runtime("cpu", "auto").amp_dtype == torch.bfloat16
    assert Predictor.from_checkpoint(ckpt_path, device="cpu").backend.runtime.amp_dtype is None


def test_the_predictor_runs_bf16_on_request_only(fp32, bf16, images):
    assert fp32.backend.runtime.amp_dtype is None
    assert bf16.backend.runtime.amp_dtype == torch.bfloat16
    want, got = fp32.run(images)[0], bf16.run(images)[0]
    assert got.dtype == torch.float32  # callers always receive fp32
    assert_bf16_close(got, want)
    assert_top1_agrees(got, want)
    p_want, p_got = want.softmax(1), got.softmax(1)
    assert (p_got - p_want).abs().max() <= 0.5 * REL_TOL * want.abs().max()


def test_class_maps_in_bf16(fp32, bf16, images):
    want, got = fp32.class_maps(images), bf16.class_maps(images)
    assert got.shape == want.shape == (N, 10, 28, 28) and got.dtype == torch.float32
    assert_bf16_close(got, want)


def test_bf16_against_the_onnx_export(ckpt_path, bf16, images, tmp_path):
    """The export's parity check is fp32 against fp32; a bf16 Predictor stays within bf16's bound of the file."""
    onnx = Predictor.from_checkpoint(export_onnx(ckpt_path, tmp_path / "m.onnx").path)
    want, got = onnx.run(images)[0], bf16.run(images)[0]
    assert_bf16_close(got, want)
    assert_top1_agrees(got, want)


def test_nin_eval_precision_bf16(ckpt_path, capsys):
    runs = {}
    for flags in ([], ["--precision", "fp32"], ["--precision", "bf16"]):  # 256 synthetic test digits
        assert main(["eval", str(ckpt_path), "--json", "--dataset", "synthetic_mnist", *flags]) == 0
        runs[" ".join(flags)] = json.loads(capsys.readouterr().out)
    default, exact, fast = runs[""], runs["--precision fp32"], runs["--precision bf16"]
    assert default == exact  # the default is fp32
    assert fast["n"] == exact["n"] == 256
    assert fast["loss"] == pytest.approx(exact["loss"], rel=REL_TOL) and fast["loss"] != exact["loss"]
    assert abs(fast["accuracy"] - exact["accuracy"]) <= 0.05


def test_nin_serve_precision_bf16(ckpt_path, fp32, images):
    import warnings

    from nin.serve.app import create_app
    from nin.serve.settings import ServeSettings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    png = png_bytes(images[0, 0].numpy())
    want = fp32.probabilities([images[0, 0].numpy()])[0]
    got = {}
    for precision in ("fp32", "bf16"):
        app = create_app(ServeSettings(checkpoint=str(ckpt_path), precision=precision))
        with TestClient(app) as client:
            deadline = time.monotonic() + 300  # a guard against a hang, not a speed check
            while (ready := client.get("/readyz")).status_code == 503:  # the model loads in the background
                assert "failed" not in ready.text and time.monotonic() < deadline, ready.text
                time.sleep(0.02)
            r = client.post("/api/predict", files={"file": ("d.png", png, "image/png")})
            assert r.status_code == 200, r.text
            rows = r.json()["output"][0]["prediction"]
            got[precision] = torch.tensor([row["probability"] for row in rows])
    torch.testing.assert_close(got["fp32"], want, atol=1e-6, rtol=0)  # the default answers as fp32 does
    diff = (got["bf16"] - want).abs().max().item()
    assert 0 < diff <= 0.5 * REL_TOL * fp32.run(images[:1])[0].abs().max().item()


def test_nin_predict_precision_bf16(ckpt_path, images, tmp_path, capsys):
    path = tmp_path / "d.png"
    path.write_bytes(png_bytes(images[0, 0].numpy()))
    out = {}
    for precision in ("fp32", "bf16"):
        assert main(["predict", str(ckpt_path), str(path), "--json", "--precision", precision]) == 0
        top = json.loads(capsys.readouterr().out)["predictions"][0]["top"]
        out[precision] = {t["label"]: t["probability"] for t in top}
    common = out["fp32"].keys() & out["bf16"].keys()
    assert len(common) >= 4
    assert max(abs(out["fp32"][k] - out["bf16"][k]) for k in common) <= 0.01


def test_a_few_training_steps_in_bf16(tmp_path, tiny_data):
    runs = {}
    for precision in ("fp32", "bf16"):
        cfg = tiny_cfg(precision=precision, max_steps=4, epochs=1)
        rt = select_runtime("cpu", precision, "off", "off")
        r = train(cfg, out_dir=tmp_path / precision, progress=False, data=tiny_data, runtime=rt)
        row = json.loads((tmp_path / precision / "metrics.jsonl").read_text().splitlines()[-1])
        runs[precision] = (r, row)
    (r32, row32), (r16, row16) = runs["fp32"], runs["bf16"]
    assert r16.steps == r32.steps == 4
    assert np.isfinite(row16["train_loss"]) and np.isfinite(row16["test_loss"])
    # The same seeded steps: bf16 rounding moves the loss a little, a bf16-only bug moves it a lot.
    assert row16["train_loss"] == pytest.approx(row32["train_loss"], rel=0.05)
    assert row16["train_loss"] != row32["train_loss"]
    w16 = torch.load(tmp_path / "bf16" / "last.pt", weights_only=True)["state_dict"]
    assert all(v.dtype in (torch.float32, torch.int64) for v in w16.values())  # master weights stay fp32


def test_holding_onednn_to_avx2_turns_native_bf16_off():
    """`make test-avx2` relies on it: with ONEDNN_MAX_CPU_ISA=AVX2 any CPU takes an AVX2-only CPU's paths."""
    import os
    import subprocess
    import sys

    code = "from nin.train.runtime import cpu_has_native_bf16, select_runtime; "
    code += "print(cpu_has_native_bf16(), select_runtime('cpu').precision)"
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "fp32"]
