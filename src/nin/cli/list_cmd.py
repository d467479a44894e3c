"""``nin list``: models (with parameter counts), configs, datasets, preprocessors."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["all", "models", "configs", "datasets", "preprocess"],
        help="what to list (default: all)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from nin.data.preprocess import list_preprocessors
    from nin.data.registry import dataset_info, list_datasets
    from nin.models import build_model, describe_model, list_models
    from nin.train.experiments import get_config, list_configs

    out: dict[str, dict] = {}
    if args.what in ("all", "models"):
        out["models"] = {
            n: {"params": sum(p.numel() for p in build_model(n).parameters()), "description": describe_model(n)}
            for n in list_models()
        }
    if args.what in ("all", "configs"):
        out["configs"] = {
            n: {"description": get_config(n).description, "paper_error_pct": get_config(n).paper_error}
            for n in list_configs()
        }
    if args.what in ("all", "datasets"):
        out["datasets"] = {
            n: {
                "shape": list(dataset_info(n).shape),
                "classes": dataset_info(n).num_classes,
                "description": dataset_info(n).description,
            }
            for n in list_datasets()
        }
    if args.what in ("all", "preprocess"):
        out["preprocess"] = {n: {} for n in list_preprocessors()}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for section, items in out.items():
        print(f"{section}:")
        for name, info in items.items():
            extra = f"{info['params']:>11,} params  " if "params" in info else ""
            paper = f"  [paper: {info['paper_error_pct']}% error]" if info.get("paper_error_pct") else ""
            print(f"  {name:<26} {extra}{info.get('description', '')}{paper}")
        print()
    return 0
