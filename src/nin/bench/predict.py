"""``nin bench --predict DIR``: the batch prediction path against its compute bound and a per-image loop.

Three ways to classify the same files, measured in one run, rounds interleaved so that a change in the
machine's load hits all three alike:

- **batch path**: ``predict_to_file`` (what ``nin predict CKPT DIR --out preds.csv`` runs): walk, decode in
  worker processes, batched forward, a part file per batch, the final merge. Its img/s excludes the start-up
  (model warm-up, workers starting, the first batch); the wall time of the whole call is reported too.
- **bare forward**: the model alone on images decoded and normalised beforehand, same batch size and
  precision: the compute bound of the batch path.
- **per-image loop**: ``Predictor.predict(path)`` on each file, the way a user's Python loop would do it.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nin.bench.runner import load_average
from nin.errors import ConfigError
from nin.predict import expand_inputs, predict_to_file
from nin.predict.decode import default_workers
from nin.serve.predictor import Predictor
from nin.train.runtime import machine_info


@dataclass(frozen=True)
class PredictBenchOptions:
    folder: str
    checkpoint: str | None = None  # None: an untrained NIN-MNIST + BN (the quickstart's net; speed only)
    batch_size: int = 128
    workers: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    rounds: int = 2
    loop_limit: int = 0  # files for the per-image loop (0: all)


def write_digit_folder(folder: str | Path, n: int) -> int:
    """``n`` embedded MNIST digits as PNG files in nested folders (``label/shard/``) and two broken files."""
    from PIL import Image

    from nin.data.embedded import load_embedded_mnist

    data = load_embedded_mnist("all")
    root = Path(folder)
    for i in range(n):
        j = (i * 7919) % len(data.labels)  # a prime stride: every class early on (the file is sorted by class)
        sub = root / str(int(data.labels[j])) / f"{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.images[j, 0].numpy()).save(sub / f"{i:07d}.png")
    (root / "broken").mkdir(parents=True, exist_ok=True)
    (root / "broken" / "truncated.png").write_bytes((sub / f"{n - 1:07d}.png").read_bytes()[:40])
    (root / "broken" / "not-an-image.jpg").write_text("a text file with an image suffix\n")
    return n + 2


def _quickstart_predictor(device: str, precision: str) -> Predictor:
    from nin.data.embedded import DIGITS, load_embedded_mnist
    from nin.data.preprocess import build_preprocessor
    from nin.models import build_model
    from nin.train.checkpoint import make_checkpoint

    torch.manual_seed(0)
    opts = {"batch_norm": True, "init": "kaiming"}
    net = build_model("nin_mnist", **opts).eval()
    pre = build_preprocessor("mean_std").fit(load_embedded_mnist("train").images)
    ckpt = make_checkpoint("nin_mnist", opts, net, pre.state_dict(), DIGITS, (1, 28, 28))
    return Predictor.from_checkpoint_dict(ckpt, device=device, precision=precision)


def _bare_forward_img_s(predictor: Predictor, pixels: torch.Tensor, batch: int) -> float:
    """The model alone over pre-decoded pixels (normalised beforehand for PyTorch; the ONNX graph normalises).

    Forward passes take at most ``backend.batch`` images, as :meth:`Predictor.run` slices every batch.
    """
    backend = predictor.backend
    batch = min(batch, backend.batch)
    if backend.kind != "torch":
        t0 = time.perf_counter()
        for i in range(0, pixels.shape[0], batch):
            backend(pixels[i : i + batch])
        return pixels.shape[0] / (time.perf_counter() - t0)
    rt = backend.runtime
    x = backend.preprocessor.apply(pixels.to(rt.device)).contiguous(memory_format=rt.memory_format)
    sync = torch.cuda.synchronize if rt.device.type == "cuda" else (lambda: None)
    with torch.inference_mode(), rt.autocast():
        backend.model(x[:batch])  # warm-up at this batch size
        sync()
        t0 = time.perf_counter()
        for i in range(0, x.shape[0], batch):
            backend.model(x[i : i + batch])
        sync()
    return x.shape[0] / (time.perf_counter() - t0)


def _loop_img_s(predictor: Predictor, files: list[str]) -> float:
    t0 = time.perf_counter()
    for f in files:
        predictor.predict(f)
    return len(files) / (time.perf_counter() - t0)


def run_predict_bench(opts: PredictBenchOptions) -> dict:
    """Measure the three ways on the files under ``opts.folder``; returns figures, ratios and the machine."""
    if not Path(opts.folder).is_dir():
        raise ConfigError(f"--predict {opts.folder} is not a folder; add --write-digits N to create one")
    load_start = load_average()
    if opts.checkpoint:
        predictor = Predictor.from_checkpoint(opts.checkpoint, device=opts.device, precision=opts.precision)
    else:
        predictor = _quickstart_predictor(opts.device, opts.precision)
    files = list(expand_inputs([opts.folder]))
    good, pixels = [], []
    for f in files:
        try:
            pixels.append(predictor.prepare_one(f))
            good.append(f)
        except Exception:  # the broken files have no pixels; the batch path gives them error rows
            continue
    if not good:
        raise ConfigError(f"no image under {opts.folder} could be decoded")
    stacked = torch.stack(pixels)
    loop_files = good[: opts.loop_limit] if opts.loop_limit else good
    workers = default_workers() if opts.workers is None else opts.workers
    predictor.predict(good[0])  # warm-up of the model (the batch path warms itself on its first batch)
    samples: dict[str, list[float]] = {"batch": [], "batch_wall": [], "bare_forward": [], "per_image_loop": []}
    summary = None
    for _ in range(opts.rounds):  # the three back to back, so each round's ratios share one state of the machine
        samples["bare_forward"].append(_bare_forward_img_s(predictor, stacked, opts.batch_size))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            summary = predict_to_file(
                predictor, iter(files), Path(tmp) / "preds.csv", batch_size=opts.batch_size, workers=workers
            )
            samples["batch_wall"].append(summary.rows / (time.perf_counter() - t0))
            samples["batch"].append(summary.img_s)
        samples["per_image_loop"].append(_loop_img_s(predictor, loop_files))
    med = {k: statistics.median(v) for k, v in samples.items()}
    frac = [b / f for b, f in zip(samples["batch"], samples["bare_forward"])]
    vs_loop = [b / lp for b, lp in zip(samples["batch"], samples["per_image_loop"])]
    return {
        "settings": {**dataclasses.asdict(opts), "workers": workers},
        "model": predictor.describe(),
        "files": len(files),
        "error_rows": summary.failed,
        "loop_files": len(loop_files),
        "batch_img_s": med["batch"],
        "batch_wall_img_s": med["batch_wall"],
        "bare_forward_img_s": med["bare_forward"],
        "per_image_loop_img_s": med["per_image_loop"],
        "batch_frac_of_bare": statistics.median(frac),  # medians of the per-round ratios
        "batch_vs_loop": statistics.median(vs_loop),
        "batch_frac_of_bare_per_round": frac,
        "samples": samples,
        "machine": machine_info(),
        "load_avg_start": load_start,
        "load_avg_end": load_average(),
    }


def format_predict(r: dict) -> str:
    m, s = r["machine"], r["settings"]
    lines = [
        f"nin bench --predict — {r['model']}, {r['files']:,} files ({r['error_rows']} error rows), "
        f"batch {s['batch_size']}, {s['workers']} decoding workers",
        f"{m['cpu']} ({m['cpu_count']} cores, {m['torch_threads']} torch threads); torch {m['torch']}; "
        f"load average {r['load_avg_start']} -> {r['load_avg_end']}; {s['rounds']} rounds, medians",
        "",
        f"{'path':<48} {'img/s':>10}",
        f"{'-' * 48} {'-' * 10}",
        f"{'batch path (nin predict --out), start-up excluded':<48} {r['batch_img_s']:>10,.0f}",
        f"{'batch path, whole call incl. start-up and merge':<48} {r['batch_wall_img_s']:>10,.0f}",
        f"{'bare batched forward (compute bound)':<48} {r['bare_forward_img_s']:>10,.0f}",
        f"{'per-image Predictor.predict loop':<48} {r['per_image_loop_img_s']:>10,.0f}"
        + (f"  ({r['loop_files']:,} files)" if r["loop_files"] != r["files"] else ""),
        "",
        f"batch path / bare forward: {100 * r['batch_frac_of_bare']:.0f}% (per round: "
        + ", ".join(f"{100 * f:.0f}%" for f in r["batch_frac_of_bare_per_round"])
        + f"); batch path / per-image loop: {r['batch_vs_loop']:.2f}x (medians of the per-round ratios)",
    ]
    return "\n".join(lines)
