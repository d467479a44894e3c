"""``run_bench``: every measurement of ``nin bench`` in one process, returned as one JSON-able dict.

Peak convention: ``train_peak_frac`` and ``eval_peak_frac`` divide our GFLOP/s by the measured GEMM peak
of the precision the runtime actually computes in (``peak_precision``): bf16 where the hardware has it
natively (CUDA, AVX512-BF16/AMX CPUs), fp32 elsewhere, because emulated bf16 is slower than fp32 and its
"peak" is no ceiling. Both GEMM peaks are reported.

Ratios are medians of per-round ratios: each round's training (or evaluation) figure is divided by the
textbook block or GEMM sample taken right beside it, which cancels most of a shared host's drift.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass

import torch

from nin.bench.flops import count_macs, eval_gflop_per_image, train_gflop_per_image
from nin.bench.inference import measure_inference, median, percentile
from nin.bench.peak import Gemm, default_gemm_size
from nin.bench.training import measure_training
from nin.data.preprocess import build_preprocessor
from nin.data.synthetic import synthetic_dataset
from nin.models import build_model
from nin.train.config import TrainConfig
from nin.train.engine import train
from nin.train.prepare import model_options
from nin.train.runtime import Runtime, machine_info, select_runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchOptions:
    """What ``nin bench`` measures; the defaults are the issue's setting (NIN-CIFAR10, batch 128, 32x32)."""

    device: str = "auto"
    precision: str = "auto"
    channels_last: str = "auto"
    compile: str = "auto"
    model: str = "nin_cifar10"
    batch_size: int = 128
    rounds: int = 5  # timed blocks per training variant (1 step each on the CPU, 50 on a GPU)
    eval_images: int = 512
    eval_rounds: int = 3
    latency_samples: int = 60
    onnx: bool = True
    train_run_epochs: int = 0  # > 0: also a short real training run on synthetic_cifar10
    quick: bool = False  # tiny sizes: checks that every part runs (numbers are not meaningful)

    @classmethod
    def quick_options(cls, **kw) -> BenchOptions:
        base = dict(batch_size=8, rounds=2, eval_images=32, eval_rounds=1, latency_samples=4, quick=True)
        return cls(**{**base, **kw})


def bench_config(opts: BenchOptions) -> TrainConfig:
    """Our default training settings for the model: the paper net, the paper's augmentation, SGD."""
    return TrainConfig(
        name="bench",
        model=opts.model,
        dataset="synthetic_cifar10",
        preprocess="mean_std",
        translate=2,
        flip=True,
        batch_size=opts.batch_size,
        epochs=1,
        schedule="constant",
        lr=0.01,
        stall_steps=0,
        device=opts.device,
        precision=opts.precision,
        channels_last=opts.channels_last,
        compile=opts.compile,
    )


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class GemmSampler:
    """Takes one fp32 and one bf16 GEMM sample per call; medians are the peaks."""

    def __init__(self, device: torch.device, quick: bool) -> None:
        min_time = 0.02 if quick else 0.2
        self.sizes = {name: default_gemm_size(device, dt, quick) for name, dt in _DTYPES.items()}
        self.gemms = {name: Gemm(device, dt, self.sizes[name], min_time) for name, dt in _DTYPES.items()}
        self.samples: dict[str, list[float]] = {name: [] for name in _DTYPES}

    def __call__(self) -> None:
        # Plain fp32 means no TF32 shortcut on GPUs: it is the fp32 ceiling.
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            self.samples["fp32"].append(self.gemms["fp32"].sample())
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        self.samples["bf16"].append(self.gemms["bf16"].sample())

    def peak(self, name: str) -> float:
        return statistics.median(self.samples[name])


def run_bench(opts: BenchOptions) -> dict:
    """Measure everything; returns the JSON object ``nin bench --json`` prints."""
    t0 = time.perf_counter()
    load_start = load_average()
    rt = select_runtime(opts.device, opts.precision, opts.channels_last, opts.compile)
    cfg = bench_config(opts)
    gemm = GemmSampler(rt.device, opts.quick)
    block = 50 if rt.device.type == "cuda" and not opts.quick else 1
    steps = block * (opts.rounds + 1)
    shape = (3, 32, 32)
    n_train = opts.batch_size * (steps + 1)  # one epoch: no evaluation inside the timed steps
    data = (
        synthetic_dataset(shape, 10, n_train, seed=1, name="bench:train"),
        synthetic_dataset(shape, 10, max(opts.batch_size, 32), seed=2, name="bench:test"),
    )
    gemm()  # sample 0: before training
    log.info("training: ours vs textbook, %d blocks of %d step(s) at batch %d", opts.rounds, block, opts.batch_size)
    speed = measure_training(cfg, data, rt, rounds=opts.rounds, block=block, between=gemm)
    ours_img_s, book_img_s = speed.img_s(opts.batch_size)

    model = build_model(cfg.model, **model_options(cfg, 10, 3))
    macs = count_macs(model, shape)
    n_eval = opts.eval_images if rt.device.type != "cuda" or opts.quick else max(opts.eval_images, 16384)
    log.info("evaluation and latency (%d images, %d rounds)", n_eval, opts.eval_rounds)
    eval_images = synthetic_dataset(shape, 10, n_eval, seed=3).images
    pre = build_preprocessor(cfg.preprocess).fit(data[0].images)
    inf = measure_inference(
        model,
        eval_images,
        pre,
        rt,
        rounds=opts.eval_rounds,
        batch_size=min(rt.eval_batch, n_eval),
        latency_samples=opts.latency_samples,
        onnx=opts.onnx,
        between=gemm,
    )
    precision = rt.precision  # the GEMM peak that bounds it
    peak = gemm.peak(precision)
    train_gflops = ours_img_s * train_gflop_per_image(macs)
    eval_img_s = median(inf.eval_img_s)
    eval_gflops = eval_img_s * eval_gflop_per_image(macs)
    # GEMM samples: [before training, one per training round, one per eval round].
    train_peaks = gemm.samples[precision][1 : 1 + opts.rounds]
    eval_peaks = gemm.samples[precision][1 + opts.rounds :]
    per_image = train_gflop_per_image(macs)
    train_fracs = [opts.batch_size / t * per_image / p for t, p in zip(speed.ours_step_s, train_peaks)]
    eval_fracs = [v * eval_gflop_per_image(macs) / p for v, p in zip(inf.eval_img_s, eval_peaks)]
    bare_fracs = [v * eval_gflop_per_image(macs) / p for v, p in zip(inf.bare_img_s, eval_peaks)]
    pipeline_vs_bare = [a / b for a, b in zip(inf.eval_img_s, inf.bare_img_s)]
    speedups = [b / o for o, b in zip(speed.ours_step_s, speed.textbook_step_s)]
    outside = speed.phase_shares.get("data", 0.0) + speed.phase_shares.get("optimizer", 0.0)
    result = {
        "train_img_s": round(ours_img_s, 2),
        "textbook_img_s": round(book_img_s, 2),
        "speedup_vs_textbook": round(statistics.median(speedups), 3),
        "fp32_gemm_gflops": round(gemm.peak("fp32"), 2),
        "bf16_gemm_gflops": round(gemm.peak("bf16"), 2),
        "peak_precision": precision,
        "precision": rt.precision,
        "peak_gflops": round(peak, 2),
        "train_gflops": round(train_gflops, 2),
        "train_peak_frac": round(statistics.median(train_fracs), 4),
        "textbook_gflops": round(book_img_s * train_gflop_per_image(macs), 2),
        "eval_img_s": round(eval_img_s, 2),
        "eval_gflops": round(eval_gflops, 2),
        "eval_peak_frac": round(statistics.median(eval_fracs), 4),
        "bare_eval_img_s": round(median(inf.bare_img_s), 2),
        "bare_eval_peak_frac": round(statistics.median(bare_fracs), 4),
        # Pipeline / bare model, per round (1.0 = preprocessing and the copies cost nothing).
        "pipeline_vs_bare": round(statistics.median(pipeline_vs_bare), 4),
        # The trained module itself under autocast (no folding or fusion): what the inference copy buys.
        "eager_model_eval_img_s": round(median(inf.eager_img_s), 2),
        # The same against the bf16 GEMM peak, whatever precision ran (> 1 where bf16 is emulated and slow).
        "train_frac_of_bf16_peak": round(train_gflops / gemm.peak("bf16"), 4),
        "eval_frac_of_bf16_peak": round(eval_gflops / gemm.peak("bf16"), 4),
        "latency_ms_p50": round(percentile(inf.latency_ms, 50), 3),
        "latency_ms_p99": round(percentile(inf.latency_ms, 99), 3),
        "onnx_eval_img_s": round(median(inf.onnx_img_s), 2) if inf.onnx_img_s else None,
        "onnx_latency_ms_p50": round(percentile(inf.onnx_latency_ms, 50), 3) if inf.onnx_latency_ms else None,
        "onnx_latency_ms_p99": round(percentile(inf.onnx_latency_ms, 99), 3) if inf.onnx_latency_ms else None,
        "onnx_error": inf.onnx_error,
        "outside_model_frac": round(outside, 4),
        "phase_ms": {k: round(v, 3) for k, v in speed.phase_ms.items()},
        "macs_per_image": macs,
        "flop_convention": "2 FLOP per MAC; a training step = 3x the forward",
        "samples": {
            "ours_step_s": [round(v, 5) for v in speed.ours_step_s],
            "textbook_step_s": [round(v, 5) for v in speed.textbook_step_s],
            "fp32_gemm_gflops": [round(v, 2) for v in gemm.samples["fp32"]],
            "bf16_gemm_gflops": [round(v, 2) for v in gemm.samples["bf16"]],
            "eval_img_s": [round(v, 2) for v in inf.eval_img_s],
            "bare_eval_img_s": [round(v, 2) for v in inf.bare_img_s],
            "eager_model_eval_img_s": [round(v, 2) for v in inf.eager_img_s],
        },
        "settings": {**asdict(opts), "block_steps": block, "gemm_sizes": gemm.sizes},
        "machine": machine_info(rt),
        "load_avg_start": load_start,
    }
    if opts.train_run_epochs > 0:
        n = 512 if opts.quick else 50_000
        result["train_run"] = short_training_run(cfg, rt, opts.train_run_epochs, n)
    result["load_avg_end"] = load_average()
    result["bench_time_s"] = round(time.perf_counter() - t0, 1)
    return result


def short_training_run(cfg: TrainConfig, rt: Runtime, epochs: int, n_train: int = 50_000) -> dict:
    """A real run of the modern recipe on CIFAR-sized ``synthetic_cifar10`` data: accuracy and speed.

    The images come from the generator behind the registered ``synthetic_cifar10`` set, 50,000 train and
    10,000 test like CIFAR-10, so an epoch is long enough to time.
    """
    run_cfg = cfg.replace(
        name="bench-train-run",
        epochs=epochs,
        batch_norm=True,
        init="kaiming",
        lr=0.05,
        bias_lr_mult=1.0,
        last_lr_mult=1.0,
        schedule="onecycle",
        max_steps=0,
    )
    shape = (3, 32, 32)
    data = (
        synthetic_dataset(shape, 10, n_train, seed=1, name="synthetic_cifar10:train"),
        synthetic_dataset(shape, 10, n_train // 5, seed=2, name="synthetic_cifar10:test"),
    )
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        r = train(run_cfg, out_dir=tmp, progress=False, runtime=rt, data=data, on_epoch=rows.append)
    return {
        "dataset": f"synthetic_cifar10 generator, {n_train} train / {n_train // 5} test",
        "epochs": r.epochs,
        "test_accuracy": r.final.get("accuracy"),
        "runtime": rt.describe(),
        "img_s_per_epoch": [round(row["img_per_s"], 1) for row in rows],
        "img_s_overall": round(r.img_per_s, 1),
        "wall_time_s": round(r.wall_time_s, 1),
    }
