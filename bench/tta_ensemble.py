"""Held-out accuracy of ensembles of the models saved by ``bench/tta_ablation.py --save-logits``.

    python bench/tta_ensemble.py A.pt B.pt [C.pt ...]

Each file holds one trained model's logits on the same held-out images (same ``--split-seed`` and ``--val``).
Prints one JSON line per model and per pair, and one for all of them: the accuracy of the mean softmax over
the models, single-view and with the recipe's 6 views (mirror x diagonal shifts of -1, 0, 1 px).
"""

from __future__ import annotations

import itertools
import json
import sys

import torch

SINGLE = [(False, 0, 0)]
SIX = [(m, d, d) for m in (False, True) for d in (-1, 0, 1)]


def main() -> None:
    paths = sys.argv[1:]
    if len(paths) < 2:
        raise SystemExit(__doc__)
    saved = {p: torch.load(p, weights_only=True) for p in paths}
    labels = saved[paths[0]]["labels"]
    if any(not torch.equal(s["labels"], labels) for s in saved.values()):
        raise SystemExit("the files were scored on different held-out images: use the same --split-seed and --val")

    def acc(members: tuple[str, ...], views: list) -> float:
        probs = sum(saved[m]["views"][v].softmax(1) for m in members for v in views)
        return round((probs.argmax(1) == labels).float().mean().item(), 4)

    groups = [(p,) for p in paths] + list(itertools.combinations(paths, 2))
    if len(paths) > 2:
        groups.append(tuple(paths))
    for g in groups:
        print(json.dumps({"models": list(g), "single_view": acc(g, SINGLE), "six_views": acc(g, SIX)}))


if __name__ == "__main__":
    main()
