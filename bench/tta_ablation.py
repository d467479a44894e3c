"""Ablations of the time-to-accuracy recipe on a held-out part of a training split (the test split is not read).

    python bench/tta_ablation.py [--dataset fashion_mnist] [--train 12000] [--val 4000] [--epochs 6]
                                 [--set cutout=8 ...] [--ema-decay 0.95]

Trains the recipe of ``nin bench --tta DATASET`` (a fixed one-cycle schedule of ``--epochs``) on ``--train``
images of the training split and scores ``--val`` other images of it (a seeded permutation: the two never
overlap), with the last weights and with a weight average (``--ema-decay``, updated every 5 steps), each
single-view, mirrored and with mirrored + diagonally shifted views (1 and 2 px). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from nin.bench.tta_recipe import recipe
from nin.data.dataset import Dataset
from nin.data.registry import load_dataset
from nin.train.config import apply_overrides
from nin.train.ema import WeightEMA
from nin.train.engine import train
from nin.train.runtime import machine_info
from nin.train.views import view_accuracy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--train", type=int, default=12000)
    ap.add_argument("--val", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")
    ap.add_argument("--ema-decay", type=float, default=0.95)
    ap.add_argument("--split-seed", type=int, default=123)
    args = ap.parse_args()

    rec = recipe(args.dataset, args.epochs, "cpu")
    cfg = apply_overrides(rec.config, args.set)
    full = load_dataset(cfg.dataset, "train", None)
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(args.split_seed))
    a, b = perm[: args.train], perm[len(full) - args.val :]
    data = (
        Dataset(full.images[a], full.labels[a], full.classes, f"{cfg.dataset}:train-part"),
        Dataset(full.images[b], full.labels[b], full.classes, f"{cfg.dataset}:held-out"),
    )
    box: dict = {}

    def on_start(p) -> None:
        box["p"], box["ema"] = p, WeightEMA(p.model, args.ema_decay, every=5)

    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        train(
            cfg,
            out_dir=tmp,
            progress=False,
            data=data,
            on_start=on_start,
            on_step=lambda s: box["ema"].step(box["p"].model, s),
        )
    res = {"config": args.set, "model": cfg.model, "epochs": args.epochs, "wall_s": round(time.perf_counter() - t, 1)}
    p = box["p"]
    for name, model in (("last", p.model), ("ema", box["ema"].model)):
        for flips, shift in ((False, 0), (False, 1), (True, 0), (True, 1), (True, 2)):
            if flips and not cfg.flip:
                continue
            acc = view_accuracy(model, data[1].images, data[1].labels, p.pre, p.rt, flips, shift)
            res[f"{name}_flips{int(flips)}_shift{shift}"] = round(acc, 4)
    res["machine"] = machine_info()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
