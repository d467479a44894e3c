"""int8 vs fp32 CPU inference of a checkpoint: speed (ONNX Runtime) and accuracy (its test split).

    python bench/int8.py runs/quickstart/last.pt [--threads 2] [--seconds 6] [--batch-size 64]

Exports the checkpoint to fp32 ONNX (verified against PyTorch) and to int8 (static quantisation, calibrated on
training images), then prints one JSON object: fp32_img_s / int8_img_s / speedup (ONNX Runtime fp32 vs int8),
torch_fp32_img_s / speedup_vs_torch (the PyTorch fp32 path of ``Predictor``), fp32/int8 accuracy on the test
split, the accuracy change in points and the machine.
Library calls: ``nin.export.benchmark_int8``, ``nin.export.evaluate_file``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from nin.export import benchmark_int8, calibration_images, evaluate_file, export_onnx, quantize_onnx, read_metadata
from nin.train.runtime import machine_info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (default: torch's)")
    p.add_argument("--seconds", type=float, default=6.0, help="timing budget per file")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--calib-images", type=int, default=512)
    p.add_argument("--full-range", action="store_true", help="8-bit weights (CPUs with VNNI only)")
    p.add_argument("--keep", type=Path, default=None, help="folder to keep the two .onnx files in")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        fp32 = export_onnx(args.checkpoint, folder / "model.onnx").path
        calib = calibration_images(read_metadata(fp32), args.calib_images)
        int8 = quantize_onnx(fp32, folder / "model.int8.onnx", calib, reduce_range=not args.full_range).path
        speed = benchmark_int8(
            fp32,
            int8,
            checkpoint=args.checkpoint,
            batch_size=args.batch_size,
            seconds=args.seconds,
            threads=args.threads or torch.get_num_threads(),
        )
        acc32 = evaluate_file(fp32)
        acc8 = evaluate_file(int8)
    result = {
        **speed,
        "fp32_accuracy": round(acc32["accuracy"], 5),
        "int8_accuracy": round(acc8["accuracy"], 5),
        "accuracy_change_points": round(100 * (acc8["accuracy"] - acc32["accuracy"]), 3),
        "test_images": acc32["n"],
        "dataset": f"{acc32['dataset']}:{acc32['split']}",
        "machine": machine_info(),  # the CPU by name, family and model, its flags, threads, versions
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
