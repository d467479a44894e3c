"""Step time of a time-to-accuracy recipe in the real training loop, under config overrides, on this machine.

    python bench/recipe_step_cost.py [--dataset fashion_mnist] [--rounds 3] [--steps 30] VARIANT [VARIANT ...]

Each VARIANT is a comma-separated list of config overrides of the recipe of ``nin bench --tta DATASET`` (``-`` for
none), e.g. ``precision=fp32`` or ``freeze_stem_bn=true,batch_size=128``. Every variant is timed with
:func:`nin.bench.budget.time_steps` (the calibration of the bench: real steps with augmentation, preprocessing and
read-backs, the first 8 untimed) in interleaved rounds, so that a change in the machine's speed hits all alike;
prints one JSON line per variant with the median step and its time per image, relative to the first variant.
"""

from __future__ import annotations

import argparse
import json
import statistics

from nin.bench.budget import time_steps
from nin.bench.tta_recipe import recipe
from nin.data.registry import load_dataset
from nin.errors import ConfigError
from nin.train.config import apply_overrides, validate
from nin.train.runtime import machine_info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    try:
        base = recipe(args.dataset).config
        configs = {v: validate(apply_overrides(base, [] if v == "-" else v.split(","))) for v in args.variants}
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    data = (load_dataset(base.dataset, base.train_split), load_dataset(base.dataset, base.test_split))
    times: dict[str, list[float]] = {v: [] for v in configs}
    for _ in range(args.rounds):
        for v, cfg in configs.items():
            times[v].append(time_steps(cfg, data, steps=args.steps, warmup=8).step_s)
    first = None
    for v, cfg in configs.items():
        per_image = statistics.median(times[v]) / cfg.batch_size
        first = first or per_image
        row = {
            "variant": v,
            "step_ms": round(1000 * statistics.median(times[v]), 2),
            "image_ms": round(1000 * per_image, 4),
            "vs_first": round(per_image / first, 3),
            "rounds_ms": [round(1000 * t, 2) for t in times[v]],
        }
        print(json.dumps(row))
    print(json.dumps({"machine": machine_info()}))


if __name__ == "__main__":
    main()
