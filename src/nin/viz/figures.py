"""Figures of class maps: the paper's Fig. 4 layout and a CAM grid over many inputs.

:func:`classmaps_figure` draws one row per input: the input, the CAM overlay of the top class (Zhou et
al. 2016) with its 20% box, then every class map (or the top k) with its class name and pooled score;
the true class is framed in green. :func:`classmaps_grid` tiles CAM overlays of many inputs (batch mode
over a dataset split). Both return a matplotlib ``Figure`` (Agg canvas); save with
:func:`nin.viz.save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from nin.errors import ConfigError
from nin.viz._mpl import new_figure, styled
from nin.viz.classmaps import ClassMaps

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

GOOD, BAD, NEUTRAL = "#2ca02c", "#d62728", "#333333"
# Above this many classes, "all maps" is unreadable (ImageNet: 1000); fall back to the top k.
MAX_ALL_CLASSES = 20
DEFAULT_TOP_K = 5
DISPLAY_SIDE = 160  # px: small inputs are enlarged (nearest) so the CAM heat map is smooth


def parse_classes(spec: str | int | None, num_classes: int) -> int | None:
    """``"all"`` -> None (every class), ``"top-5"`` / ``"top5"`` / ``"5"`` / 5 -> 5, ``"auto"`` -> all or top 5."""
    if spec is None or spec == "auto":
        return None if num_classes <= MAX_ALL_CLASSES else DEFAULT_TOP_K
    if isinstance(spec, int):
        k = spec
    else:
        text = spec.strip().lower()
        if text == "all":
            return None
        text = text.removeprefix("top").lstrip("-_ ")
        try:
            k = int(text)
        except ValueError:
            raise ConfigError(f"--classes {spec!r}: use all, auto or top-K (e.g. top-3)") from None
    if k < 1:
        raise ConfigError(f"--classes {spec!r}: K must be >= 1")
    return min(k, num_classes)


def _image_axes(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _frame(ax: Axes, color: str, width: float = 3.0) -> None:
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color(color)
        spine.set_linewidth(width)


def _show_rgb(ax: Axes, rgb: np.ndarray) -> None:
    ax.imshow(rgb, interpolation="nearest")
    _image_axes(ax)


def _short(name: str, limit: int = 14) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def classmaps_figure(
    results: Sequence[ClassMaps],
    classes: str | int | None = "auto",
    alpha: float = 0.5,
    cmap: str = "jet",
    map_cmap: str = "viridis",
    box: bool = False,
    title: str | None = None,
) -> Figure:
    """One row per input: input, CAM overlay of the top class, then its class maps (paper Fig. 4).

    Args:
        results: from :meth:`nin.viz.ClassMapper.explain` (or ``explain_files`` / ``explain_dataset``).
        classes: which maps to show: ``"all"``, ``"top-k"`` / ``k``, or ``"auto"`` (all up to 20 classes,
            else the top 5). Top-k maps are ordered by score.
        alpha: heat-map weight of the CAM overlay.
        cmap: colormap of the CAM overlay.
        map_cmap: colormap of the raw maps; all maps of a row share one scale, so brightness compares
            across classes as the pooled scores do.
        box: draw the CAM box (largest region above 20% of the map's maximum); off by default because
            on small inputs whose maps cover most of the image (digits) it is nearly the whole frame.
        title: figure title (default: explains what the panels are).

    Returns:
        A matplotlib ``Figure``.
    """
    if not results:
        raise ValueError("no class maps to draw")
    k_all = len(results[0].classes)
    k = parse_classes(classes, k_all)
    n_maps = k_all if k is None else k
    cols = 2 + n_maps
    panel = 1.25 if n_maps <= 12 else 1.0
    height = 1.3 * panel * len(results) + 0.5
    fig = new_figure(panel * cols, height)
    with styled():
        # Fixed inches for the title band, whatever the number of rows (fractions would grow with the figure).
        grid = fig.add_gridspec(
            len(results), cols, wspace=0.08, hspace=0.4, top=1 - 0.8 / height, bottom=0.02, left=0.01, right=0.99
        )
        for row, r in enumerate(results):
            shown = list(range(k_all)) if k is None else r.top(k)
            probs = r.probs
            ax = fig.add_subplot(grid[row, 0])
            _show_rgb(ax, r.image)
            truth = f"\ntrue: {_short(r.classes[r.label])}" if r.label is not None else ""
            ax.set_title(f"{_short(r.name, 18)}{truth}", fontsize=8, color=NEUTRAL)
            ax = fig.add_subplot(grid[row, 1])
            _show_rgb(ax, r.overlay(alpha=alpha, cmap=cmap, box=box, min_side=DISPLAY_SIDE))
            verdict = {None: NEUTRAL, True: GOOD, False: BAD}[r.correct]
            ax.set_title(f"CAM: {_short(r.pred_name)}\np = {probs[r.pred]:.2f}", fontsize=8, color=verdict)
            vmin = min(0.0, float(r.maps[shown].min()))
            vmax = max(float(r.maps[shown].max()), vmin + 1e-6)
            for j, c in enumerate(shown):
                ax = fig.add_subplot(grid[row, 2 + j])
                ax.imshow(r.maps[c], cmap=map_cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
                _image_axes(ax)
                is_pred = c == r.pred
                color = BAD if (is_pred and r.correct is False) else NEUTRAL
                ax.set_title(
                    f"{_short(r.classes[c], 12)}\n{r.logits[c]:.2f}",
                    fontsize=8,
                    fontweight="bold" if is_pred else "normal",
                    color=color,
                )
                if r.label is not None and c == r.label:
                    _frame(ax, GOOD)
        fig.suptitle(
            title
            or "Class maps of the last mlpconv (NIN §3.2, Fig. 4): title = class and pooled score (the logit); "
            "green frame = true class",
            fontsize=9,
            y=1 - 0.08 / height,
            va="top",
        )
    return fig


def classmaps_grid(
    results: Sequence[ClassMaps],
    columns: int | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    box: bool = False,
    title: str | None = None,
) -> Figure:
    """A grid of CAM overlays of the predicted class, one tile per input (batch mode over a split).

    Each tile's title gives the prediction and its probability, and the true class when known; tiles
    are titled green when right and red when wrong.
    """
    if not results:
        raise ValueError("no class maps to draw")
    n = len(results)
    cols = columns or min(8, max(1, math.ceil(math.sqrt(n * 1.5))))
    rows = math.ceil(n / cols)
    height = 1.8 * rows + 0.45
    fig = new_figure(1.55 * cols, height)
    with styled():
        grid = fig.add_gridspec(rows, cols, wspace=0.06, hspace=0.45, top=1 - 0.8 / height, bottom=0.02)
        for i, r in enumerate(results):
            ax = fig.add_subplot(grid[i // cols, i % cols])
            _show_rgb(ax, r.overlay(alpha=alpha, cmap=cmap, box=box, min_side=DISPLAY_SIDE))
            color = {None: NEUTRAL, True: GOOD, False: BAD}[r.correct]
            line2 = f"true {_short(r.classes[r.label], 10)}" if r.label is not None else _short(r.name, 16)
            ax.set_title(f"{_short(r.pred_name, 10)}  p={r.probs[r.pred]:.2f}\n{line2}", fontsize=8, color=color)
            if r.correct is False:
                _frame(ax, BAD, 2.0)
        right = sum(1 for r in results if r.correct)
        known = sum(1 for r in results if r.correct is not None)
        score = f" — {right}/{known} correct" if known else ""
        fig.suptitle(
            title or f"CAM of the predicted class{', box at 20% of the map maximum' if box else ''}{score}",
            fontsize=9,
            y=1 - 0.08 / height,
            va="top",
        )
    return fig
