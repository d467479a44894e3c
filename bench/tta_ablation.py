"""Ablations of the time-to-accuracy recipe on a held-out part of a training split (the test split is not read).

    python bench/tta_ablation.py [--dataset fashion_mnist] [--train 12000] [--val 4000] [--epochs 6]
                                 [--set cutout=8 ...] [--ema-decay 0.95] [--threads N]
                                 [--widths 48-32-32,64-64-32,64-64 --kernels 5,5,5 --stem-stride 2]
                                 [--save-logits F.pt]

Trains the recipe of ``nin bench --tta DATASET`` (a fixed one-cycle schedule of ``--epochs``) on ``--train``
images of the training split and scores ``--val`` other images of it (a seeded permutation: the two never
overlap), with the last weights and with a weight average (``--ema-decay``, updated every 5 steps), each
single-view, mirrored, with mirrored + diagonally shifted views (1 and 2 px), and with the 18 views of mirror x
every shift of -1..1 px. ``--widths``/``--kernels`` train a NIN-MNIST of other widths instead of the recipe's
model (three mlpconv blocks; the last block's widths stop before the class maps); ``--stem-stride 2`` gives its
first convolution stride 2 and drops the pool after block 1 (block 1 then runs at 14x14). ``--save-logits`` keeps the
held-out logits of every view of the last weights, for ``bench/tta_ensemble.py``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time

import torch

from nin.bench.tta_recipe import recipe
from nin.data.dataset import Dataset
from nin.data.registry import load_dataset
from nin.models.family import NetSpec, paper_blocks
from nin.models.registry import register_specs
from nin.train.config import apply_overrides
from nin.train.ema import WeightEMA
from nin.train.engine import train
from nin.train.runtime import machine_info
from nin.train.views import view_logits

ABLATION_NET = "ablation-net"
# Mirror x every shift of -1..1 px, then the +-2 px diagonals: what --save-logits keeps.
ALL_VIEWS = [(m, dy, dx) for m in (False, True) for dy in (-1, 0, 1) for dx in (-1, 0, 1)] + [
    (m, d, d) for m in (False, True) for d in (-2, 2)
]


def _register(widths: str, kernels: str, stem_stride: int = 1) -> str:
    blocks = tuple(tuple(int(c) for c in block.split("-")) for block in widths.split(","))
    ks = tuple(int(k) for k in kernels.split(","))
    if len(blocks) != 3 or len(ks) != 3:
        raise SystemExit("--widths needs three blocks (a-b-c,d-e-f,g-h) and --kernels three sizes (5,5,5)")
    specs = paper_blocks(blocks, ks)
    if stem_stride > 1:  # a strided first convolution replaces the pool after block 1
        specs = (dataclasses.replace(specs[0], stride=stem_stride, pool=None), *specs[1:])
    spec = NetSpec(f"ablation: {widths} k{kernels} s{stem_stride}", specs, input_size=(28, 28), in_channels=1)
    register_specs({ABLATION_NET: spec})
    return ABLATION_NET


def _one_view_logits(model, images, pre, rt, view) -> torch.Tensor:
    from nin.train.views import shift

    mirrored, dy, dx = view
    x = images.flip(3) if mirrored else images
    # view_logits of one view: the same inference copy and preprocessing, on the view taken here.
    return view_logits(model, shift(x, dy, dx).contiguous(), pre, rt, flips=False, shift_px=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--train", type=int, default=12000)
    ap.add_argument("--val", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")
    ap.add_argument("--ema-decay", type=float, default=0.95)
    ap.add_argument("--split-seed", type=int, default=123)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--widths", help="train NIN-MNIST at these widths, e.g. 48-32-32,64-64-32,64-64")
    ap.add_argument("--kernels", default="5,5,5", help="with --widths: the three kernel sizes")
    ap.add_argument("--stem-stride", type=int, default=1, help="with --widths: stride of the first convolution")
    ap.add_argument("--save-logits", help="write the held-out logits of every view (torch.save) to this file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rec = recipe(args.dataset, args.epochs, "cpu")
    cfg = apply_overrides(rec.config, args.set)
    if args.stem_stride < 1 or (args.stem_stride > 1 and not args.widths):
        raise SystemExit("--stem-stride needs --widths and a stride of at least 1")
    if args.widths:
        cfg = cfg.replace(model=_register(args.widths, args.kernels, args.stem_stride))
    full = load_dataset(cfg.dataset, "train", None)
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(args.split_seed))
    a, b = perm[: args.train], perm[len(full) - args.val :]
    data = (
        Dataset(full.images[a], full.labels[a], full.classes, f"{cfg.dataset}:train-part"),
        Dataset(full.images[b], full.labels[b], full.classes, f"{cfg.dataset}:held-out"),
    )
    box: dict = {}
    curve: list[float] = []

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
            on_epoch=lambda row: curve.append(round(row["test_accuracy"], 4)),
        )
    res = {
        "config": args.set,
        "model": cfg.model if not args.widths else f"{args.widths} k{args.kernels} stem-stride {args.stem_stride}",
        "epochs": args.epochs,
        "wall_s": round(time.perf_counter() - t, 1),
        "held_out_per_epoch": curve,
    }
    p = box["p"]
    images, labels = data[1].images, data[1].labels
    for name, model in (("last", p.model), ("ema", box["ema"].model)):
        logits = {v: _one_view_logits(model, images, p.pre, p.rt, v) for v in ALL_VIEWS}
        groups = {
            "flips0_shift0": [(False, 0, 0)],
            "flips0_shift1": [(False, 0, 0), (False, -1, -1), (False, 1, 1)],
            "flips1_shift0": [(False, 0, 0), (True, 0, 0)],
            "flips1_shift1": [(m, d, d) for m in (False, True) for d in (-1, 0, 1)],
            "flips1_shift2": [(m, d, d) for m in (False, True) for d in (-2, 0, 2)],
            "views18": [v for v in ALL_VIEWS if abs(v[1]) <= 1 and abs(v[2]) <= 1],
        }
        for key, chosen in groups.items():
            if any(m for m, _, _ in chosen) and not cfg.flip:
                continue
            mean = sum(logits[v] for v in chosen) / len(chosen)
            res[f"{name}_{key}"] = round((mean.argmax(1) == labels).float().mean().item(), 4)
        if name == "last" and args.save_logits:
            torch.save({"views": logits, "labels": labels, "result": res}, args.save_logits)
    res["machine"] = machine_info()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
