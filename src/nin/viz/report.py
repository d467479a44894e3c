"""``nin report``: one self-contained HTML page (plots embedded as PNG) and a Markdown summary of a run folder.

The report reads only the run folder (see :mod:`nin.viz.report_data` for what it shows and where each number
comes from); :mod:`nin.viz.report_html` renders it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from nin.errors import ConfigError
from nin.viz.report_data import ReportData, gather
from nin.viz.report_html import render_html, render_markdown

log = logging.getLogger(__name__)


@dataclass
class ReportResult:
    html: Path
    markdown: Path
    plots: dict[str, Path]
    data: ReportData


def build_report(
    run_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    checkpoint: str = "best",
    confusion: bool = True,
    device: str = "cpu",
) -> ReportResult:
    """Write ``report.html`` (self-contained) and ``report.md`` (+ its PNGs) for a run folder.

    Args:
        run_dir: the ``--out`` folder of ``nin train``.
        out: the HTML file (default ``RUN_DIR/report.html``); the Markdown summary goes next to it with
            the suffix ``.md``, its plots into the folder ``<stem>_plots``.
        checkpoint: ``best``, ``last`` or a path: the checkpoint whose confusion matrix is shown.
        confusion: evaluate the checkpoint for the confusion matrix.
        device: where that evaluation runs.

    Returns:
        The paths written and the gathered :class:`ReportData`.
    """
    data = gather(run_dir, checkpoint, confusion, device)
    html_path = Path(out) if out is not None else data.run.path / "report.html"
    if html_path.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"-o {html_path}: the report is HTML; give a path ending in .html")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    md_path = html_path.with_suffix(".md")
    plot_dir = html_path.with_name(html_path.stem + "_plots")
    plot_dir.mkdir(exist_ok=True)
    plots = {}
    for name, png in data.plots.items():
        plots[name] = plot_dir / f"{name}.png"
        plots[name].write_bytes(png)
    generated = time.strftime("%Y-%m-%d %H:%M")
    html_path.write_text(render_html(data, generated), encoding="utf-8")
    md_path.write_text(render_markdown(data, {k: v.relative_to(md_path.parent) for k, v in plots.items()}, generated))
    log.debug("wrote %s and %s", html_path, md_path)
    return ReportResult(html_path, md_path, plots, data)
