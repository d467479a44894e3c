"""``nin bench --predict DIR``: the batch prediction path against its compute bound and a per-image loop.

Three ways to classify the same files, measured in one run, rounds interleaved so that a change in the
machine's load hits all alike:

- **batch path**: ``predict_to_file`` (what ``nin predict CKPT DIR --out preds.csv`` runs): walk, decode,
  batched forward, a part file per batch, the final merge; in each of the ``variants`` asked for (decoding in
  worker ``processes`` or ``threads``, in the ``main`` thread alone, ``overlap``-ped with the forward, with
  JPEG ``draft``). Its img/s excludes the start-up (model warm-up, workers starting, the first batch); the wall
  time of the whole call is reported too.
- **bare forward**: the model alone on images decoded and normalised beforehand, in the slices
  ``Predictor.run`` cuts, same precision: the compute bound. It is measured right before each variant in each
  round, and each ratio is the variant's img/s over that bare forward's.
- **per-image loop**: ``Predictor.predict(path)`` on each file, the way a user's Python loop would do it.

With ``photos`` a second folder of large JPEGs runs the same way through an ImageNet-size NIN; the result then
holds both image kinds (``ratios``). With ``draft`` among the variants the effect of JPEG draft on the pixels
and the probabilities is measured on the same files (``draft_effect``).
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nin.bench.predict_folders import photo_predictor, quickstart_predictor, write_digit_folder, write_photo_folder
from nin.bench.predict_report import format_predict
from nin.bench.runner import load_average
from nin.errors import ConfigError
from nin.predict import expand_inputs, predict_to_file
from nin.predict.decode import default_workers
from nin.predict.engine import resolve_batch_size, resolve_pool
from nin.predict.pixels import decode_into, draft_size
from nin.serve.predictor import Predictor
from nin.train.runtime import machine_info

__all__ = ["PredictBenchOptions", "format_predict", "run_predict_bench", "write_digit_folder", "write_photo_folder"]

# Variant name -> predict_to_file options (workers aside).
VARIANTS: dict[str, dict] = {
    "processes": {"pool": "processes"},
    "threads": {"pool": "threads"},
    "main": {"pool": "processes", "workers": 0},
    "overlap": {"pool": "processes", "overlap": True},
    "threads_overlap": {"pool": "threads", "overlap": True},
    "draft": {"pool": "processes", "jpeg_draft": True},
}


@dataclass(frozen=True)
class PredictBenchOptions:
    folder: str
    checkpoint: str | None = None  # None: an untrained NIN-MNIST + BN (the quickstart's net; speed only)
    batch_size: int | None = None  # None: nin predict's default for the folder's model (by input size)
    workers: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    rounds: int = 2
    loop_limit: int = 0  # files for the per-image loop (0: all)
    variants: tuple[str, ...] = ("processes", "threads")
    photos: str | None = None  # a second folder, of large JPEGs, through an untrained ImageNet NIN
    photo_batch_size: int | None = None


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


def _decodable(predictor: Predictor, files: list[str]) -> tuple[list[str], torch.Tensor]:
    good, pixels = [], []
    for f in files:
        try:
            pixels.append(predictor.prepare_one(f))
            good.append(f)
        except Exception:  # the broken files have no pixels; the batch path gives them error rows
            continue
    if not good:
        raise ConfigError("no image in the folder could be decoded")
    return good, torch.stack(pixels)


def draft_effect(predictor: Predictor, files: list[str], limit: int = 64) -> dict:
    """JPEG draft against the exact decode on up to ``limit`` files: pixels (0-255) and probabilities."""
    shape = predictor.input_shape
    size = draft_size(predictor.preprocessor, shape)
    sample = [f for f in files if f.lower().endswith((".jpg", ".jpeg"))][:limit]
    exact = torch.empty((len(sample), *shape), dtype=torch.uint8)
    drafted = torch.empty_like(exact)
    for j, f in enumerate(sample):
        decode_into(predictor, f, exact[j])
        decode_into(predictor, f, drafted[j], size)
    if not sample or size is None:
        return {"files": len(sample), "changed": 0}
    diff = (exact.float() - drafted.float()).abs()
    p_exact = torch.softmax(predictor.run(exact)[0], dim=1)
    p_draft = torch.softmax(predictor.run(drafted)[0], dim=1)
    return {
        "files": len(sample),
        "changed": int((diff.flatten(1).amax(1) > 0).sum()),
        "pixel_mean_abs": float(diff.mean()),
        "pixel_max_abs": float(diff.max()),
        "prob_max_abs": float((p_exact - p_draft).abs().max()),
        "top1_agree": float((p_exact.argmax(1) == p_draft.argmax(1)).float().mean()),
    }


def _measure_folder(predictor: Predictor, folder: str, batch: int, workers: int | None, opts) -> dict:
    """All variants, the bare forward before each, and the per-image loop, over ``opts.rounds`` rounds."""
    batch = resolve_batch_size(predictor, batch)
    files = list(expand_inputs([folder]))
    good, stacked = _decodable(predictor, files)
    loop_files = good[: opts.loop_limit] if opts.loop_limit else good
    predictor.predict(good[0])  # warm-up of the model (the batch path warms itself on its first batch)
    runs: dict[str, dict[str, list[float]]] = {
        v: {"batch": [], "batch_wall": [], "bare_forward": []} for v in opts.variants
    }
    loop: list[float] = []
    used: dict[str, int] = {}
    summary = None
    for _ in range(opts.rounds):  # everything back to back, so each round's ratios share one state of the machine
        for name in opts.variants:
            kw = {"workers": workers, **VARIANTS[name]}
            if kw["workers"] is None:
                kw["workers"] = default_workers(kw.get("overlap", False))
            used[name] = kw["workers"]
            runs[name]["bare_forward"].append(_bare_forward_img_s(predictor, stacked, batch))
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                summary = predict_to_file(predictor, iter(files), Path(tmp) / "preds.csv", batch_size=batch, **kw)
                runs[name]["batch_wall"].append(summary.rows / (time.perf_counter() - t0))
                runs[name]["batch"].append(summary.img_s)
        loop.append(_loop_img_s(predictor, loop_files))
    variants = {}
    for name, s in runs.items():
        frac = [b / f for b, f in zip(s["batch"], s["bare_forward"])]
        variants[name] = {
            "workers": used[name],
            "batch_img_s": statistics.median(s["batch"]),
            "batch_wall_img_s": statistics.median(s["batch_wall"]),
            "bare_forward_img_s": statistics.median(s["bare_forward"]),
            "frac_of_bare": statistics.median(frac),  # the median of the per-round ratios
            "frac_of_bare_per_round": frac,
            "vs_loop": statistics.median(b / lp for b, lp in zip(s["batch"], loop)),
            "samples": s,
        }
    # The headline: what `nin predict` does by default for this folder's model, when it was measured.
    auto = resolve_pool(predictor, "auto")
    head = auto if auto in opts.variants else opts.variants[0]
    main = runs[head]
    out = {
        "folder": folder,
        "model": predictor.describe(),
        "batch_size": batch,
        "files": len(files),
        "error_rows": summary.failed,
        "loop_files": len(loop_files),
        "default_variant": head,
        "batch_img_s": variants[head]["batch_img_s"],
        "batch_wall_img_s": variants[head]["batch_wall_img_s"],
        "bare_forward_img_s": variants[head]["bare_forward_img_s"],
        "per_image_loop_img_s": statistics.median(loop),
        "batch_frac_of_bare": variants[head]["frac_of_bare"],
        "batch_vs_loop": variants[head]["vs_loop"],
        "batch_frac_of_bare_per_round": variants[head]["frac_of_bare_per_round"],
        "variants": variants,
        "samples": {**main, "per_image_loop": loop},
    }
    if "draft" in opts.variants:
        out["draft_effect"] = draft_effect(predictor, good)
    return out


def run_predict_bench(opts: PredictBenchOptions) -> dict:
    """Measure the ways on the files under ``opts.folder`` (and ``opts.photos``); figures, ratios and the machine."""
    for folder in (opts.folder, opts.photos):
        if folder is not None and not Path(folder).is_dir():
            raise ConfigError(f"--predict/--photos {folder} is not a folder; add --write-digits/--write-photos N")
    unknown = [v for v in opts.variants if v not in VARIANTS]
    if unknown or not opts.variants:
        raise ConfigError(f"--variants: {', '.join(unknown) or 'none given'}; choose from {', '.join(VARIANTS)}")
    load_start = load_average()
    if opts.checkpoint:
        predictor = Predictor.from_checkpoint(opts.checkpoint, device=opts.device, precision=opts.precision)
    else:
        predictor = quickstart_predictor(opts.device, opts.precision)
    workers = opts.workers  # None: each variant's default (one per core; one less beside the model)
    result = _measure_folder(predictor, opts.folder, opts.batch_size, workers, opts)
    ratios = {"small": result["batch_frac_of_bare"]}
    if opts.photos is not None:
        photos = photo_predictor(opts.device, opts.precision)
        result["photos"] = _measure_folder(photos, opts.photos, opts.photo_batch_size, workers, opts)
        ratios["photos"] = result["photos"]["batch_frac_of_bare"]
    return {
        "settings": {**dataclasses.asdict(opts), "workers": workers},
        **result,
        "ratios": ratios,
        "machine": machine_info(),
        "load_avg_start": load_start,
        "load_avg_end": load_average(),
    }
