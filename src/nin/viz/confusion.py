"""The confusion matrix of a checkpoint on its test split, as a figure and as the list of its largest mistakes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from nin.viz._mpl import new_figure, styled

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def confusion_figure(cm: np.ndarray, classes: Sequence[str], title: str = "Confusion matrix") -> Figure:
    """A confusion matrix (rows = true class, columns = predicted), row-normalised colours, counts written in.

    Counts are written in the cells up to 20 classes; above that the matrix is drawn as an image only.
    """
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    if cm.shape != (k, k) or len(classes) != k:
        raise ValueError(f"confusion matrix {cm.shape} does not match {len(classes)} classes")
    rows = cm.sum(1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    side = min(9.0, max(4.2, 0.42 * k + 1.6))
    fig = new_figure(side + 0.8, side)
    with styled():
        ax = fig.add_subplot(1, 1, 1)
        im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        ax.grid(False)
        ax.set_title(title, loc="left", fontweight="bold")
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        if k <= 30:
            ticks = np.arange(k)
            ax.set_xticks(ticks, [str(c) for c in classes], rotation=90 if max(map(len, classes)) > 3 else 0)
            ax.set_yticks(ticks, [str(c) for c in classes])
        if k <= 20:
            for i in range(k):
                for j in range(k):
                    if cm[i, j]:
                        ax.text(
                            j,
                            i,
                            str(cm[i, j]),
                            ha="center",
                            va="center",
                            fontsize=7 if k > 12 else 8,
                            color="white" if frac[i, j] > 0.5 else "#222222",
                        )
        cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cbar.set_label("fraction of the true class")
    return fig


def most_confused(cm: np.ndarray, classes: Sequence[str], n: int = 10) -> list[tuple[str, str, int]]:
    """The ``n`` largest off-diagonal cells: (true class, predicted class, count), largest first."""
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:n]
    out = []
    for idx in flat:
        i, j = np.unravel_index(idx, cm.shape)
        if off[i, j] <= 0:
            break
        out.append((str(classes[i]), str(classes[j]), int(off[i, j])))
    return out
