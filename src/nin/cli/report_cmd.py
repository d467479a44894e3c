"""``nin report RUN_DIR``: learning curves, key numbers, config and confusion matrix of a run, as HTML + Markdown."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a run folder written by `nin train --out DIR`")
    p.add_argument("-o", "--output", type=Path, default=None, help="HTML file to write (default: RUN_DIR/report.html)")
    p.add_argument(
        "--checkpoint",
        default="best",
        help="checkpoint of the confusion matrix: best (default; falls back to last), last, or a .pt path",
    )
    p.add_argument("--no-confusion", action="store_true", help="skip evaluating the checkpoint (no confusion matrix)")
    p.add_argument("--device", default="cpu", help="where the confusion-matrix evaluation runs: cpu | cuda | auto")


def run(args: argparse.Namespace) -> int:
    from nin.viz.report import build_report

    result = build_report(
        args.run_dir, args.output, checkpoint=args.checkpoint, confusion=not args.no_confusion, device=args.device
    )
    print(f"wrote {result.html} (self-contained) and {result.markdown} (plots in {result.html.stem}_plots/)")
    for note in result.data.notes:
        print(f"  note: {note}")
    return 0
