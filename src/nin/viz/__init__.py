"""Explaining and reporting: class maps and CAM overlays (paper §3.2, Fig. 4), learning curves, run reports.

Every function returns arrays or matplotlib ``Figure`` objects, so it works from a notebook as from the
``nin classmaps`` and ``nin report`` commands. matplotlib is imported only when a figure is drawn, with
the object API on an Agg canvas (no pyplot, no global backend switch). Names are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ClassMapper": "nin.viz.classmaps",
    "ClassMaps": "nin.viz.classmaps",
    "cam_overlay": "nin.viz.cam",
    "cam_box": "nin.viz.cam",
    "upsample_map": "nin.viz.cam",
    "normalize_map": "nin.viz.cam",
    "classmaps_figure": "nin.viz.figures",
    "classmaps_grid": "nin.viz.figures",
    "load_run": "nin.train.rundir",
    "curves_figures": "nin.viz.curves",
    "confusion_figure": "nin.viz.confusion",
    "build_report": "nin.viz.report",
    "TensorBoardLogger": "nin.viz.tensorboard",
    "save_figure": "nin.viz._mpl",
    "figure_png": "nin.viz._mpl",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nin.viz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
