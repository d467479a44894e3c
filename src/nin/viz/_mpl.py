"""Lazy matplotlib: figures are built with the object API on an Agg canvas, never through pyplot.

Nothing here imports matplotlib until a function is called, and nothing switches the global backend, so
the same functions work in scripts, on headless servers and in notebooks (Jupyter displays the returned
``Figure`` objects).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nin.errors import ConfigError
from nin.extras import require

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# One look for every figure: light grid, no top/right spines, readable small text.
STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "savefig.bbox": "tight",
}

# Tableau-like colours used for train / test / reference lines across the report.
TRAIN, TEST, PAPER, ACCENT = "#4e79a7", "#e15759", "#59a14f", "#f28e2b"


def _matplotlib():
    return require("matplotlib", "drawing plots")


def colormap(name: str):
    """A matplotlib colormap by name; an unknown name raises ``ConfigError`` listing a few valid ones."""
    mpl = _matplotlib()
    try:
        return mpl.colormaps[name]
    except KeyError:
        raise ConfigError(f"unknown colormap {name!r}; try jet, turbo, viridis, inferno or magma") from None


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches on an Agg canvas, with :data:`STYLE` applied."""
    mpl = _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(width, height), dpi=STYLE["figure.dpi"])
    FigureCanvasAgg(fig)
    return fig


def styled():
    """Context manager applying :data:`STYLE` while axes are drawn (rc params are read at creation)."""
    return _matplotlib().rc_context(STYLE)


def figure_png(fig: Figure, dpi: int | None = None) -> bytes:
    """The figure rendered as PNG bytes."""
    buf = io.BytesIO()
    with styled():
        fig.savefig(buf, format="png", dpi=dpi or STYLE["savefig.dpi"], facecolor="white")
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int | None = None) -> Path:
    """Write the figure as PNG (or any format matplotlib knows from the suffix); returns the path."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    with styled():
        fig.savefig(path, dpi=dpi or STYLE["savefig.dpi"], facecolor="white")
    return path
