"""int8 CPU inference: ONNX Runtime static quantisation of an exported NIN, and its speed and accuracy.

Convolutions get int8 weights (per output channel) and uint8 activations, calibrated on training images;
ReLU and max pooling are quantised too, so the whole mlpconv stack runs in integers (ONNX Runtime fuses it
into QLinearConv / NhwcMaxPool kernels with one quantise at the input and one dequantise per output). The
preprocessing in front and the global average pooling behind stay float.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nin.errors import ConfigError
from nin.export.names import ONNX_INPUT, ONNX_LOGITS
from nin.export.onnx import DEFAULT_OPSET, export_onnx, read_metadata, write_metadata
from nin.export.runtime import inference_session, session_metadata
from nin.extras import require

log = logging.getLogger(__name__)

CALIBRATION_SEED = 20131216
# Conv alone leaves a quantise/dequantise pair around every layer (measured: no faster than fp32); with ReLU
# and MaxPool quantised as well the activations stay uint8 from the first conv to the class maps.
QUANTIZED_OPS = ("Conv", "Relu", "MaxPool")
AGREEMENT_IMAGES = 2000  # test images int8 is compared with fp32 on after quantising


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    calibration_images: int
    top1_agreement: float  # int8 vs fp32 top-1 agreement on held-out images of the calibration dataset
    max_abs_diff: float  # int8 vs fp32 logits on the same images
    n_checked: int


def calibration_images(
    meta: dict, n: int, dataset: str | None = None, root: str | None = None, image_dir: str | Path | None = None
) -> torch.Tensor:
    """``n`` calibration images, uint8 (n, C, H, W) at the model's input size.

    From ``image_dir`` (any image files, prepared with the model's own ``prepare_image``) when given, else a
    seeded random sample of the training split of ``dataset`` or of the dataset the model was trained on.
    """
    want = tuple(int(meta["input"][k]) for k in ("channels", "height", "width"))
    if image_dir is not None:
        return _folder_images(meta, Path(image_dir), n, want)
    from nin.data.registry import load_dataset

    train = meta.get("train") or {}
    name = dataset or train.get("dataset")
    if not name:
        raise ConfigError(
            "int8 calibration needs training images: the model records no dataset; "
            "pass --calib-dataset NAME or --calib-dir FOLDER"
        )
    ds = load_dataset(
        name, train.get("train_split", "train") if not dataset else "train", root or train.get("data_root")
    )
    if ds.shape != want:
        raise ConfigError(f"calibration dataset {name} has images {ds.shape}, the model takes {want}")
    g = torch.Generator().manual_seed(CALIBRATION_SEED)
    idx = torch.randperm(len(ds), generator=g)[: min(n, len(ds))]
    return ds.images[idx]


def _folder_images(meta: dict, folder: Path, n: int, shape: tuple[int, int, int]) -> torch.Tensor:
    from nin.data.images import IMAGE_SUFFIXES, open_image
    from nin.data.preprocess import preprocessor_from_state

    pre = preprocessor_from_state({"name": meta["preprocess"]["name"], "options": meta["preprocess"]["options"]})
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:n]
    if not files:
        raise ConfigError(f"--calib-dir {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    c, h, w = shape
    return torch.stack([pre.prepare_image(open_image(p), c, (h, w)) for p in files])


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over uint8 images, in batches."""

    def __init__(self, images: torch.Tensor, batch: int = 32) -> None:
        self.batches = [images[i : i + batch].float().numpy() for i in range(0, len(images), batch)]
        self.i = 0

    def get_next(self):
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {ONNX_INPUT: self.batches[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0


def quantize_onnx(
    fp32_path: str | Path,
    out: str | Path,
    images: torch.Tensor,
    *,
    check_images: torch.Tensor | None = None,
    per_channel: bool = True,
    reduce_range: bool = True,
) -> QuantizeResult:
    """Statically quantise an fp32 export (``nin export --format onnx``) to int8.

    Args:
        fp32_path: the fp32 ``.onnx`` file.
        out: the int8 ``.onnx`` file to write.
        images: calibration images, uint8 (N, C, H, W) (a few hundred training images are plenty).
        check_images: images to compare int8 with fp32 on (default: none, no check).
        per_channel: one weight scale per output channel (more accurate, same speed).
        reduce_range: 7-bit weights (default). Without VNNI (AVX2, plain AVX-512) ONNX Runtime's u8 x s8
            kernels add pairs of products in saturating 16-bit registers; full 8-bit weights overflow them.
            Measured on the embedded MNIST net (AVX2): top-1 agreement with fp32 93.5% with full range, 99.8%
            with reduced range. Turn it off only for CPUs with VNNI.
    """
    ortq = require("onnxruntime.quantization", "int8 quantisation")

    fp32_path, out = Path(fp32_path), Path(out)
    meta = read_metadata(fp32_path)
    if meta.get("quantization"):
        raise ConfigError(f"{fp32_path} is already quantised; quantise the fp32 export")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        ortq.quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        ortq.quantize_static(
            str(prepared),
            str(out),
            _Reader(images),
            quant_format=ortq.QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=ortq.QuantType.QUInt8,
            weight_type=ortq.QuantType.QInt8,
            calibrate_method=ortq.CalibrationMethod.MinMax,
        )
    meta["quantization"] = {
        "method": "onnxruntime static, QDQ",
        "ops": list(QUANTIZED_OPS),
        "weights": "int8 per-channel" if per_channel else "int8 per-tensor",
        "activations": "uint8",
        "calibration_images": len(images),
        "reduce_range": reduce_range,
    }
    write_metadata(out, meta)
    agree, diff, n = float("nan"), float("nan"), 0
    if check_images is not None and len(check_images):
        a = run_logits(fp32_path, check_images)
        b = run_logits(out, check_images)
        agree = float((a.argmax(1) == b.argmax(1)).mean())
        diff, n = float(np.abs(a - b).max()), len(check_images)
    return QuantizeResult(out, len(images), agree, diff, n)


def export_int8(
    checkpoint: str | Path,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    calib_images: int = 512,
    calib_dataset: str | None = None,
    calib_dir: str | Path | None = None,
    reduce_range: bool = True,
) -> QuantizeResult:
    """A checkpoint straight to an int8 ``.onnx`` (``nin export --format onnx-int8``).

    Exports a verified fp32 graph to a temporary file, calibrates on ``calib_images`` training images (of the
    model's dataset, of ``calib_dataset``, or the image files in ``calib_dir``) and quantises it. When the
    calibration images come from the model's own training split, int8 is compared with fp32 on up to
    2,000 images of its test split (:func:`nin.train.testdata.load_eval_split`).
    """
    from nin.train.testdata import load_eval_split

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(checkpoint, Path(tmp) / "fp32.onnx", opset=opset).path
        meta = read_metadata(fp32)
        calib = calibration_images(meta, calib_images, calib_dataset, image_dir=calib_dir)
        check = None
        if (meta.get("train") or {}).get("dataset") and not (calib_dataset or calib_dir):
            check = load_eval_split(meta, source=checkpoint)[1].images[:AGREEMENT_IMAGES]
        return quantize_onnx(fp32, out, calib, check_images=check, reduce_range=reduce_range)


def run_logits(path: str | Path, images: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Logits (N, K) of an exported file on uint8 images (N, C, H, W)."""
    session = inference_session(path)
    out = [
        session.run([ONNX_LOGITS], {ONNX_INPUT: images[i : i + batch].float().numpy()})[0]
        for i in range(0, len(images), batch)
    ]
    return np.concatenate(out)


def _throughput(session, x: np.ndarray, seconds: float, min_runs: int) -> float:
    session.run([ONNX_LOGITS], {ONNX_INPUT: x})  # warm-up: allocations, kernel selection
    runs, t0 = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - t0 < seconds:
        session.run([ONNX_LOGITS], {ONNX_INPUT: x})
        runs += 1
    return runs * x.shape[0] / (time.perf_counter() - t0)


def _torch_step(checkpoint: str | Path, x: np.ndarray):
    """One batch through the PyTorch fp32 path ``Predictor`` and ``nin eval`` use (preprocessing + the fused
    inference copy of the model, CPU)."""
    from nin.export.evaluate import load_for_eval
    from nin.models.inference import inference_model
    from nin.train.runtime import inference_runtime

    rt = inference_runtime("cpu")
    _, model, pre = load_for_eval(checkpoint, rt)
    model = inference_model(model.eval(), None, rt.memory_format)
    pixels = torch.from_numpy(x)

    def step() -> None:
        model(pre.apply(pixels).contiguous(memory_format=rt.memory_format))

    return step


def _torch_throughput(step, batch: int, seconds: float, min_runs: int) -> float:
    """Images/s of ``step`` (one batch of ``batch`` images), after one warm-up call."""
    with torch.inference_mode():
        step()
        runs, t0 = 0, time.perf_counter()
        while runs < min_runs or time.perf_counter() - t0 < seconds:
            step()
            runs += 1
    return runs * batch / (time.perf_counter() - t0)


def benchmark_int8(
    fp32_path: str | Path,
    int8_path: str | Path,
    *,
    checkpoint: str | Path | None = None,
    batch_size: int = 64,
    seconds: float = 3.0,
    threads: int = 0,
    rounds: int = 3,
) -> dict:
    """Images per second of the fp32 and int8 exports under ONNX Runtime on the CPU, and the speed-up.

    The files alternate for ``rounds`` rounds (so a noisy neighbour hurts both alike); the best round of each
    counts. With ``checkpoint``, the PyTorch fp32 path (what ``Predictor`` runs on a ``.pt``) is timed too.

    Returns:
        ``{"fp32_img_s", "int8_img_s", "speedup", "batch_size", "threads"}`` (ONNX Runtime fp32 vs int8) and,
        with ``checkpoint``, ``"torch_fp32_img_s"`` and ``"speedup_vs_torch"``.
    """
    s32, s8 = inference_session(fp32_path, threads), inference_session(int8_path, threads)
    meta = session_metadata(s32, fp32_path)
    shape = tuple(int(meta["input"][k]) for k in ("channels", "height", "width"))
    x = np.random.default_rng(0).integers(0, 256, (batch_size, *shape)).astype(np.float32)
    best32 = best8 = best_torch = 0.0
    torch_step = _torch_step(checkpoint, x) if checkpoint is not None else None  # built once, timed each round
    for _ in range(rounds):
        best32 = max(best32, _throughput(s32, x, seconds / rounds, 3))
        best8 = max(best8, _throughput(s8, x, seconds / rounds, 3))
        if torch_step is not None:
            best_torch = max(best_torch, _torch_throughput(torch_step, batch_size, seconds / rounds, 3))
    result = {
        "fp32_img_s": round(best32, 1),
        "int8_img_s": round(best8, 1),
        "speedup": round(best8 / best32, 3),
        "batch_size": batch_size,
        "threads": threads or torch.get_num_threads(),
    }
    if checkpoint is not None:
        result["torch_fp32_img_s"] = round(best_torch, 1)
        result["speedup_vs_torch"] = round(best8 / best_torch, 3)
    return result
