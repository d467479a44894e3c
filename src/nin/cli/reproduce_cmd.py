"""``nin reproduce [ROW ...]``: run the paper's experiments and write report.md, report.json and report.png."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from nin.cli.options import add_overrides


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "rows",
        nargs="*",
        metavar="ROW",
        help="paper rows to run (default: all; see --list); any config name works too, e.g. fashion_mnist",
    )
    p.add_argument(
        "--data-root",
        default=None,
        help="folder holding the datasets (default: $NIN_DATA_ROOT or ~/.local/share/nin/datasets)",
    )
    p.add_argument(
        "--recipe",
        default="paper",
        choices=["paper", "modern"],
        help="paper (§4, default) or modern (BN, one-cycle: fast)",
    )
    p.add_argument(
        "--epochs-scale", type=float, default=1.0, metavar="F", help="multiply every row's epoch budget by F (e.g. 0.1)"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="report folder (default: runs/reproduce-RECIPE-YYYYmmdd-HHMMSS)"
    )
    add_overrides(p, "config overrides for every row, e.g. --set device=cuda")
    p.add_argument("--resume", action="store_true", help="continue each row from OUT/CONFIG/last.pt (needs --out)")
    p.add_argument("--smoke", action="store_true", help="every row for a few steps on synthetic data of its shape")
    p.add_argument("--list", action="store_true", help="list the rows, their configs, paper numbers and data status")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from nin.errors import ConfigError
    from nin.reproduce import PAPER_ROWS, reproduce
    from nin.reproduce.report import render_markdown

    rows = args.rows or list(PAPER_ROWS)
    if args.list:
        return _list(rows, args)
    if args.resume and args.out is None:
        raise ConfigError("--resume needs --out DIR, the report folder to continue")
    out = (
        args.out
        or Path("runs") / f"reproduce-{'smoke' if args.smoke else args.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    command = (
        "nin reproduce " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["reproduce"] else ""
    )
    report = reproduce(
        rows,
        out,
        data_root=args.data_root,
        recipe=args.recipe,
        epochs_scale=args.epochs_scale,
        overrides=args.overrides,
        smoke=args.smoke,
        resume=args.resume,
        progress=not args.no_progress and sys.stderr.isatty(),
        command=command,
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render_markdown(report, chart=None), end="")
        print(
            f"\nreport: {out / 'report.md'}, {out / 'report.json'}"
            + (f", {out / 'report.png'}" if (out / "report.png").exists() else "")
        )
    return 1 if any(r["status"] == "failed" for r in report["rows"]) else 0


def _list(rows: list[str], args: argparse.Namespace) -> int:
    from nin.reproduce.rows import data_status, row_config

    out = []
    for row in rows:
        cfg = row_config(row, args.recipe)
        if args.data_root:
            cfg = cfg.replace(data_root=args.data_root)
        ok, fetch = data_status(cfg)
        out.append(
            {
                "row": row,
                "config": cfg.name,
                "paper_error": cfg.paper_error,
                "paper_ref": cfg.paper_ref,
                "dataset": cfg.dataset,
                "epochs": cfg.epochs,
                "data": "found" if ok else "not found",
                "fetch": fetch,
            }
        )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for r in out:
        paper = f"{r['paper_error']:.2f}%" if r["paper_error"] is not None else "—"
        data = r["data"] + (f": {r['fetch']}" if r["fetch"] else "")
        print(f"  {r['row']:<24} {r['config']:<30} paper {paper:>7}  {r['epochs']:>4} epochs  data {data}")
    return 0
