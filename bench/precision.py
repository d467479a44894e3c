"""Every inference precision of one checkpoint side by side: accuracy, agreement with fp32, and speed.

    python bench/precision.py runs/quickstart/last.pt [--batch-size 64] [--rounds 5] [--threads N]

The choices are what a user can pick: the PyTorch path of ``Predictor`` in fp32 (the default of every inference
command) and in bf16 (``--precision bf16``), and ONNX Runtime on the fp32 and int8 exports (``nin export``). Each runs
the checkpoint's whole test split through ``Predictor.run`` (uint8 pixels in, float32 logits out), so the figures
include the preprocessing. Speed: the choices alternate round by round and the medians are reported, so the drift
of a shared machine hits them alike. Prints one JSON object, with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from nin.export import calibration_images, export_onnx, quantize_onnx, read_metadata
from nin.serve.predictor import Predictor
from nin.train.checkpoint import load_checkpoint
from nin.train.runtime import machine_info
from nin.train.testdata import load_eval_split


def _logits(p: Predictor, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([p.run(images[i : i + batch_size])[0] for i in range(0, len(images), batch_size)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--dataset", default=None, help="dataset to test on (default: the checkpoint's)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5, help="timed passes per choice, interleaved")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    _, test = load_eval_split(load_checkpoint(args.checkpoint), args.dataset, source=args.checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_onnx = export_onnx(args.checkpoint, Path(tmp) / "m.onnx").path
        calib = calibration_images(read_metadata(fp32_onnx), 512)
        int8_onnx = quantize_onnx(fp32_onnx, Path(tmp) / "m.int8.onnx", calib).path
        choices = {
            "torch_fp32": Predictor.from_checkpoint(args.checkpoint, device="cpu", precision="fp32"),
            "torch_bf16": Predictor.from_checkpoint(args.checkpoint, device="cpu", precision="bf16"),
            "onnx_fp32": Predictor.from_checkpoint(fp32_onnx, threads=args.threads),
            "onnx_int8": Predictor.from_checkpoint(int8_onnx, threads=args.threads),
        }
        logits = {name: _logits(p, test.images, args.batch_size) for name, p in choices.items()}  # also warm-up
        speed: dict[str, list[float]] = {name: [] for name in choices}
        for _ in range(args.rounds):
            for name, p in choices.items():
                t0 = time.perf_counter()
                _logits(p, test.images, args.batch_size)
                speed[name].append(len(test.images) / (time.perf_counter() - t0))
    ref = logits["torch_fp32"]
    result = {
        "checkpoint": str(args.checkpoint),
        "test": f"{test.name} ({len(test.images)} images)",
        "batch_size": args.batch_size,
        "choices": {
            name: {
                "accuracy": round((out.argmax(1) == test.labels).float().mean().item(), 5),
                "top1_agrees_with_fp32": round((out.argmax(1) == ref.argmax(1)).float().mean().item(), 5),
                "max_abs_prob_diff_vs_fp32": float(f"{(out.softmax(1) - ref.softmax(1)).abs().max().item():.3g}"),
                "img_s": round(statistics.median(speed[name]), 1),
                "speed_vs_fp32": round(statistics.median(a / b for a, b in zip(speed[name], speed["torch_fp32"])), 3),
            }
            for name, out in logits.items()
        },
        "machine": machine_info(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
