"""``nin eval CHECKPOINT``: rebuild the model from the file alone and evaluate it on its test split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nin.cli.options import add_precision


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint",
        type=Path,
        help="a .pt or .safetensors checkpoint, a Hub folder, hf-hub:ORG/NAME[@REV], or an .onnx export",
    )
    p.add_argument("--dataset", default=None, help="dataset name (default: the one the checkpoint was trained on)")
    p.add_argument("--split", default=None, help="split to evaluate (default: the config's test split)")
    p.add_argument("--data-root", default=None, help="folder holding the dataset files")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_precision(p)
    p.add_argument(
        "--batch-size", type=int, default=None, help="images per forward pass (default: 64 on a CPU, 1024 on a GPU)"
    )
    p.add_argument(
        "--flip",
        action="store_true",
        help="test-time flips: score the mean logits of each image and its mirror (refused for a model "
        "trained without flips, e.g. digits, whose class a mirror can change)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from nin.errors import ConfigError
    from nin.export import load_for_eval
    from nin.train.evaluate import evaluate
    from nin.train.runtime import inference_runtime
    from nin.train.testdata import load_eval_split

    # A .pt checkpoint or an .onnx export (fp32 or int8: the export carries its preprocessing and metadata).
    rt = inference_runtime(args.device, args.precision)
    ckpt, model, pre = load_for_eval(args.checkpoint, rt)
    train_cfg = ckpt.get("train") or {}
    if args.flip and train_cfg and not train_cfg.get("flip", False):
        raise ConfigError(
            f"--flip: {args.checkpoint} was trained without mirrored images (flip=false: digits or text change "
            "meaning when mirrored), so test-time flips would not measure this model; drop --flip"
        )
    where, ds = load_eval_split(ckpt, args.dataset, args.split, args.data_root, source=args.checkpoint)
    m = evaluate(model, ds.images, ds.labels, pre, rt, args.batch_size, flips=args.flip)
    m.update(
        dataset=where.dataset,
        split=where.split,
        model=ckpt["model"]["name"],
        checkpoint=str(args.checkpoint),
        flips=args.flip,
    )
    if args.json:
        print(json.dumps(m))
    else:
        print(
            f"{m['model']} on {where.name}: accuracy {100 * m['accuracy']:.2f}% "
            f"(error {m['error_pct']:.2f}%), loss {m['loss']:.4f}, n={m['n']}"
            + (" with test-time flips" if args.flip else "")
        )
    return 0
