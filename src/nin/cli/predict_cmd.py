"""``nin predict CHECKPOINT IMAGE...``: classify image files with a checkpoint or an ONNX export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nin.cli.options import add_precision


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="a .pt checkpoint or an .onnx file from `nin export`")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, GIF, BMP, ...)")
    p.add_argument("--top-k", type=int, default=5, help="classes to show per image (default: 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_precision(p)


def _bar(p: float, width: int = 24) -> str:
    n = round(p * width)
    return "█" * n + "·" * (width - n)


def run(args: argparse.Namespace) -> int:
    from nin.errors import ConfigError, NinError
    from nin.serve.predictor import Predictor

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision)
    results, failed = [], 0
    for path in args.images:
        try:
            pred = predictor.predict(path, top_k=args.top_k)
        except NinError as exc:  # one unreadable file does not stop the others
            failed += 1
            results.append({"image": str(path), "error": str(exc)})
            continue
        results.append({"image": str(path), **pred.to_dict()})
    if args.json:
        print(json.dumps({"model": predictor.info.name, "checkpoint": str(args.checkpoint), "predictions": results}))
    else:
        width = max(len(lab) for lab in predictor.classes[:10_000]) if predictor.classes else 5
        width = min(max(width, 5), 40)
        for r in results:
            print(r["image"])
            if "error" in r:
                print(f"  error: {r['error']}")
                continue
            for rank, t in enumerate(r["top"], start=1):
                label = t["label"] if len(t["label"]) <= width else t["label"][: width - 1] + "…"
                print(f"  {rank:>2}. {label:<{width}} {100 * t['probability']:6.2f}%  {_bar(t['probability'])}")
    for r in results:
        if "error" in r:
            print(f"nin predict: error: {r['error']}", file=sys.stderr)
    return 2 if failed else 0
