"""``nin classmaps CHECKPOINT [IMAGE...]``: the class maps of NIN's last mlpconv (paper Fig. 4) and CAM overlays.

Inputs are image files (opened and decoded exactly as ``nin predict`` does it) and/or items of
a dataset split (``--index``, true class known and framed). ``--grid N`` tiles CAM overlays of N items of a
split instead (batch mode).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nin.cli.options import add_precision

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint",
        type=Path,
        help="a GAP model: a .pt or .safetensors checkpoint, a Hub folder, hf-hub:ORG/NAME[@REV], or an .onnx export",
    )
    p.add_argument(
        "images", nargs="*", type=Path, metavar="IMAGE", help="image files to explain (PNG, JPEG, GIF, BMP, ...)"
    )
    p.add_argument(
        "-o", "--output", type=Path, default=None, help="PNG to write (default: classmaps.png / classmaps-grid.png)"
    )
    p.add_argument(
        "--classes",
        default="auto",
        help="maps to show per input: all | top-K (e.g. top-3) | auto (all up to 20 classes, else top-5)",
    )
    p.add_argument("--dataset", default=None, help="dataset of --index/--grid (default: the checkpoint's)")
    p.add_argument("--split", default=None, help="split of --index/--grid (default: the checkpoint's test split)")
    p.add_argument("--data-root", default=None, help="folder holding the dataset files")
    p.add_argument("--index", type=int, nargs="+", default=[], metavar="I", help="dataset items to explain")
    p.add_argument(
        "--per-class", action="store_true", help="explain the first item of each class of the split (one row each)"
    )
    p.add_argument("--grid", type=int, default=0, metavar="N", help="batch mode: a grid of N CAM overlays of the split")
    p.add_argument(
        "--pick",
        choices=["first", "random", "errors"],
        default="first",
        help="which items --grid shows: the first N, N at random (--seed), or the first N misclassified",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of --pick random")
    p.add_argument("--alpha", type=float, default=0.5, help="heat-map weight of the CAM overlay (0-1)")
    p.add_argument("--cmap", default="jet", help="matplotlib colormap of the CAM overlay")
    p.add_argument(
        "--box", action="store_true", help="draw the CAM box (largest region above 20%% of the map's maximum)"
    )
    p.add_argument("--per-page", type=int, default=12, help="rows per figure; more inputs go to FILE-2.png, ...")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    add_precision(p)


def _dataset(args: argparse.Namespace, mapper):
    from nin.train.testdata import load_eval_split

    info = mapper.predictor.info  # what the file records: its training config and input size
    recorded = {"train": info.train, "input": info.input}
    return load_eval_split(recorded, args.dataset, args.split, args.data_root, source=args.checkpoint)[1]


def _grid_indices(args: argparse.Namespace, mapper, ds) -> list[int]:
    import torch

    from nin.errors import ConfigError

    n = min(args.grid, len(ds))
    if args.pick == "first":
        return list(range(n))
    if args.pick == "random":
        return torch.randperm(len(ds), generator=torch.Generator().manual_seed(args.seed))[:n].tolist()
    wrong = mapper.misclassified(ds)
    if not wrong:
        raise ConfigError(f"the model makes no mistake on {ds.name}; use --pick first or random")
    return wrong[:n]


def _first_of_each_class(ds) -> list[int]:
    labels = ds.labels
    return [int((labels == c).nonzero()[0, 0]) for c in range(len(ds.classes)) if bool((labels == c).any())]


def _pages(path: Path, n_pages: int) -> list[Path]:
    if n_pages == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(1, n_pages + 1)]


def run(args: argparse.Namespace) -> int:
    from nin.errors import ConfigError
    from nin.viz import ClassMapper, classmaps_figure, classmaps_grid, save_figure
    from nin.viz.figures import parse_classes

    if args.grid < 0 or args.per_page < 1:
        raise ConfigError("--grid and --per-page must be positive")
    if not (args.images or args.index or args.per_class or args.grid):
        raise ConfigError("nothing to explain: give IMAGE files, --index I [I ...], --per-class or --grid N")
    if args.grid and (args.images or args.index or args.per_class):
        raise ConfigError("--grid explains a dataset split on its own; drop the IMAGE files, --index and --per-class")
    if not 0.0 <= args.alpha <= 1.0:
        raise ConfigError(f"--alpha must be in [0, 1], got {args.alpha}")
    mapper = ClassMapper.from_checkpoint(args.checkpoint, args.device, args.precision)
    parse_classes(args.classes, len(mapper.classes))  # fail on a bad --classes before any work
    box = args.box

    if args.grid:
        ds = _dataset(args, mapper)
        results = mapper.explain_dataset(ds, _grid_indices(args, mapper, ds))
        out = args.output or Path("classmaps-grid.png")
        save_figure(classmaps_grid(results, alpha=args.alpha, cmap=args.cmap, box=box), out)
        right = sum(bool(r.correct) for r in results)
        print(f"{out}: CAM grid of {len(results)} items of {ds.name} ({right}/{len(results)} correct)")
        return 0

    results = mapper.explain_files(args.images) if args.images else []
    if args.index or args.per_class:
        ds = _dataset(args, mapper)
        results += mapper.explain_dataset(ds, list(args.index) + (_first_of_each_class(ds) if args.per_class else []))
    out = args.output or Path("classmaps.png")
    chunks = [results[i : i + args.per_page] for i in range(0, len(results), args.per_page)]
    paths = _pages(out, len(chunks))
    for path, chunk in zip(paths, chunks, strict=True):
        fig = classmaps_figure(chunk, classes=args.classes, alpha=args.alpha, cmap=args.cmap, box=box)
        save_figure(fig, path)
    for r in results:
        truth = "" if r.label is None else f"  true {r.classes[r.label]} ({'right' if r.correct else 'WRONG'})"
        print(f"{r.name}: predicted {r.pred_name} (p={r.probs[r.pred]:.3f}, score {r.logits[r.pred]:.3f}){truth}")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
