"""``nin train``: train a registered config, with ``--set key=value`` overrides."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nin.cli.options import add_overrides


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="quickstart", help="a config from `nin list configs` (default: quickstart)")
    add_overrides(p, "override config fields, e.g. --set epochs=3 lr=0.05 (see --show-config for keys)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run folder (default: runs/CONFIG-YYYYmmdd-HHMMSS; with --resume: required)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--show-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--json", action="store_true", help="print the final result as one JSON object")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard events to OUT/tb")


def run(args: argparse.Namespace) -> int:
    from nin.errors import ConfigError
    from nin.train.config import apply_overrides
    from nin.train.experiments import get_config

    cfg = apply_overrides(get_config(args.config), args.overrides)
    if args.show_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    if args.resume and args.out is None:
        raise ConfigError("--resume needs --out DIR, the run folder to continue")
    out = args.out or Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"

    from nin.train.engine import train

    progress = not args.no_progress and sys.stderr.isatty()
    tb = None
    if args.tensorboard:
        from nin.viz.tensorboard import TensorBoardLogger

        tb = TensorBoardLogger(Path(out) / "tb", cfg.to_dict())
    try:
        result = train(cfg, out_dir=out, resume=args.resume, progress=progress, on_epoch=tb)
    finally:
        if tb is not None:
            tb.close()
    summary = {
        "run_dir": str(result.run_dir),
        "epochs": result.epochs,
        "steps": result.steps,
        "test_accuracy": result.final.get("accuracy"),
        "test_error_pct": result.final.get("error_pct"),
        "best_error_pct": result.best_error_pct,
        "train_time_s": round(result.train_time_s, 1),
        "wall_time_s": round(result.wall_time_s, 1),
        "train_img_per_s": round(result.img_per_s, 1),
        "checkpoint": str(result.run_dir / "last.pt"),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        acc = result.final.get("accuracy")
        print(
            f"{cfg.name}: test accuracy {100 * acc:.2f}% ({result.final.get('n')} images) after "
            f"{result.epochs} epochs; training {result.train_time_s:.0f} s, wall {result.wall_time_s:.0f} s; "
            f"checkpoint {summary['checkpoint']}"
        )
        if cfg.paper_error is not None:
            print(
                f"  paper ({cfg.paper_ref or 'Lin et al. 2013'}): {cfg.paper_error:.2f}% error; "
                f"ours: {result.final.get('error_pct'):.2f}%"
            )
    return 0
