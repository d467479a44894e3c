"""nin bench: every part runs and reports what it measured (speed targets live in the benchmark, not here)."""

import json

import pytest
import torch

from nin.bench import BenchOptions, run_bench
from nin.bench.flops import count_macs, train_gflop_per_image
from nin.bench.peak import gemm_gflops
from nin.bench.report import format_table
from nin.models import build_model

KEYS = {
    "train_img_s",
    "textbook_img_s",
    "bf16_gemm_gflops",
    "train_peak_frac",
    "eval_img_s",
    "eval_peak_frac",
    "latency_ms_p50",
    "train_frac_of_bf16_peak",
    "eval_frac_of_bf16_peak",
    "bare_eval_img_s",
    "bare_eval_peak_frac",
    "pipeline_vs_bare",
    "eager_model_eval_img_s",
}


def test_nin_cifar10_costs_222_5m_macs():
    macs = count_macs(build_model("nin_cifar10"), (3, 32, 32))
    assert macs == pytest.approx(222.5e6, rel=2e-3)
    assert train_gflop_per_image(macs) == pytest.approx(1.335, rel=2e-3)


def test_gemm_peak_is_positive():
    assert gemm_gflops(torch.device("cpu"), torch.float32, 64, repeats=1, min_time_s=0.01) > 0


def test_quick_bench_reports_every_key():
    """A tiny model and batch: checks the wiring, not the speed."""
    r = run_bench(BenchOptions.quick_options(model="nin_mnist_half", batch_size=4, eval_images=8, device="cpu"))
    assert set(r) >= KEYS
    for key in KEYS:
        assert r[key] > 0, key
    assert r["peak_precision"] in ("fp32", "bf16") and r["precision"] == r["machine"]["precision"]
    assert set(r["machine"]["cpu_flags"]) == {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "amx_int8"}
    assert len(r["samples"]["bare_eval_img_s"]) == len(r["samples"]["eval_img_s"])
    assert len(r["samples"]["ours_step_s"]) == len(r["samples"]["textbook_step_s"]) == 2
    assert set(r["phase_ms"]) == {"data", "model", "optimizer"} and 0 <= r["outside_model_frac"] <= 1
    json.dumps(r)  # one JSON object
    text = format_table(r)
    for phrase in ("textbook", "GEMM peak", "latency", "ours / textbook", "bare model", "CPU flags"):
        assert phrase in text


@pytest.mark.slow
def test_cli_bench_quick_json(capsys):
    from nin.cli import main

    assert main(["bench", "--quick", "--json", "--device", "cpu"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r) >= KEYS and r["settings"]["model"] == "nin_cifar10"


def test_tta_quick_runs(tmp_path):
    from nin.bench.tta import TTAOptions, format_tta, run_tta

    r = run_tta(TTAOptions(quick=True, target=0.99, budget_s=600, device="cpu"))
    assert r["epochs_run"] == 1 and 0 <= r["best_test_accuracy"] <= 1 and not r["reached"]
    assert r["schedule"]["sized_to_budget"] and r["schedule"]["steps"] == 64 // 16  # the whole quick epoch fits
    assert "target not reached" in format_tta(r) and "sized to the budget" in format_tta(r)
    fixed = run_tta(TTAOptions(quick=True, target=0.99, budget_s=600, device="cpu", epochs=2))
    assert fixed["epochs_run"] == 2 and not fixed["schedule"]["sized_to_budget"] and not fixed["schedule"]["replans"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_steps_do_not_wait_for_the_gpu(tmp_path):
    """Between read-backs the CUDA training step never synchronises with the host."""
    from nin.data.synthetic import synthetic_dataset
    from nin.train import TrainConfig, train

    data = (synthetic_dataset((3, 32, 32), 10, 64 * 40, seed=1), synthetic_dataset((3, 32, 32), 10, 64, seed=2))
    cfg = TrainConfig(
        model="nin_cifar10",
        dataset="synthetic_cifar10",
        batch_size=64,
        epochs=1,
        max_steps=30,
        translate=2,
        flip=True,
        batch_norm=True,
        init="kaiming",
        stall_steps=0,
        device="cuda",
    )

    def watch(step):
        # Steps 3..29: augmentation was prepared 32 steps ahead and the loss is read back every 50 steps.
        torch.cuda.set_sync_debug_mode("error" if 3 <= step < 29 else "default")

    try:
        train(cfg, out_dir=tmp_path, progress=False, data=data, on_step=watch)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_inference_measures_eager_and_onnx_runtime():
    from nin.bench.inference import measure_inference
    from nin.data.preprocess import build_preprocessor
    from nin.data.synthetic import synthetic_dataset
    from nin.train.runtime import select_runtime

    ds = synthetic_dataset((1, 28, 28), 10, 16, seed=3)
    pre = build_preprocessor("scale")
    speed = measure_inference(
        build_model("nin_mnist_half"),
        ds.images,
        pre,
        select_runtime("cpu", "fp32"),
        rounds=2,
        batch_size=8,
        latency_samples=4,
    )
    assert speed.onnx_error is None
    assert len(speed.eval_img_s) == len(speed.onnx_img_s) == 2 and min(speed.onnx_img_s) > 0
    assert len(speed.latency_ms) == len(speed.onnx_latency_ms) == 4 and min(speed.onnx_latency_ms) > 0
