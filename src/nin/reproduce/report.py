"""The reproduction report: ``report.json`` (everything), ``report.md`` (the table) and ``report.png`` (our test
error beside the paper's, one pair of bars per row). Each file is written atomically.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from nin.atomic import atomic_open, write_bytes

log = logging.getLogger(__name__)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _duration(s: float) -> str:
    if s <= 0:
        return "—"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _machine_line(m: dict) -> str:
    parts = [m.get("gpu") or m.get("cpu", ""), f"{m.get('cpu_count')} CPUs", m.get("platform", "")]
    if m.get("runtime"):
        parts.append(m["runtime"])
    parts.append(f"torch {m.get('torch')}")
    return ", ".join(p for p in parts if p)


def render_markdown(report: dict, chart: str | None = "report.png") -> str:
    """The table of ``report.md``: per row our test error beside the paper's, the gap, time, epochs."""
    lines = ["# Network In Network — reproduction report", ""]
    lines.append(
        f"Recipe **{report['recipe']}**, epochs x{report['epochs_scale']:g}; "
        f"machine: {_machine_line(report['machine'])}; nin {report['nin_version']}; {report['created']}."
    )
    if report.get("command"):
        lines += ["", f"Command: `{report['command']}`"]
    if report["smoke"]:
        lines += [
            "",
            "**Smoke run**: every row trained for a few steps on synthetic data of its shape. "
            "The errors below only show that each row runs; they say nothing about the paper's numbers.",
        ]
    lines += [
        "",
        "| row | paper | paper error % | ours % (last epoch) | best % | gap (pp) | epochs | wall time | status |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["rows"]:
        gap = "—" if r["gap_pp"] is None else f"{r['gap_pp']:+.2f}"
        epochs = f"{r['epochs']}/{r['epochs_planned']}" if r["status"] not in ("data not found",) else "—"
        status = r["status"]
        if status == "failed":
            status = "failed (see below)"
        lines.append(
            f"| `{r['row']}` | {r['paper_ref'] or '—'} | {_pct(r['paper_error'])} | {_pct(r['error_pct'])} | "
            f"{_pct(r['best_error_pct'])} | {gap} | {epochs} | {_duration(r['wall_time_s'])} | {status} |"
        )
    missing = [r for r in report["rows"] if r["status"] == "data not found"]
    if missing:
        lines += ["", "## Data not found", ""]
        lines += [f"- `{r['row']}` ({r['dataset']}): `{r['fetch']}`" for r in missing]
    failed = [r for r in report["rows"] if r["status"] == "failed"]
    if failed:
        lines += ["", "## Failed rows", ""]
        lines += [f"- `{r['row']}`: {r['message']}" for r in failed]
    lines += [
        "",
        "Test error is measured on the official test split after the last epoch; *best* is the lowest after any "
        "epoch (the paper reports one number per row). *gap* = ours - paper, in percentage points. Each row's run "
        "folder (config.json, metrics.jsonl, checkpoints) is next to this report.",
    ]
    if chart:
        lines += ["", f"![our test error beside the paper's]({chart})"]
    return "\n".join(lines) + "\n"


def render_chart(report: dict, path: Path) -> bool:
    """Grouped bars: the paper's test error and ours per row. Returns False when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        log.warning("no bar chart: matplotlib is not installed (pip install 'nin[viz]')")
        return False
    rows = report["rows"]
    fig = Figure(figsize=(max(6.0, 1.0 + 0.9 * len(rows)), 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = range(len(rows))
    w = 0.38
    paper = [r["paper_error"] if r["paper_error"] is not None else 0.0 for r in rows]
    ours = [r["error_pct"] if r["error_pct"] is not None else 0.0 for r in rows]
    ax.bar([x - w / 2 for x in xs], paper, w, label="paper", color="#9e9e9e")
    ax.bar([x + w / 2 for x in xs], ours, w, label="ours (last epoch)", color="#1f77b4")
    top = max([*paper, *ours, 1.0])
    for x, r in zip(xs, rows, strict=True):
        note = {"data not found": "no data", "failed": "failed"}.get(r["status"])
        if r["paper_error"] is None:
            ax.text(x - w / 2, top * 0.02, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
        else:
            ax.text(x - w / 2, r["paper_error"], f"{r['paper_error']:.2f}", ha="center", va="bottom", fontsize=7)
        if note:
            ax.text(x + w / 2, top * 0.02, note, ha="center", va="bottom", fontsize=7, rotation=90)
        elif r["error_pct"] is not None:
            ax.text(x + w / 2, r["error_pct"], f"{r['error_pct']:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([r["row"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("test error (%)")
    title = f"NIN reproduction, {report['recipe']} recipe"
    ax.set_title(title + (" (smoke: synthetic data)" if report["smoke"] else ""), fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png")
    return True


def write_report(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write report.json, report.png (when matplotlib is there) and report.md into ``out_dir``."""
    out = Path(out_dir)
    paths = {"json": out / "report.json", "md": out / "report.md", "png": out / "report.png"}
    write_bytes(paths["json"], (json.dumps(report, indent=2) + "\n").encode())
    has_chart = render_chart(report, paths["png"])
    if not has_chart:
        paths.pop("png")
    write_bytes(paths["md"], render_markdown(report, "report.png" if has_chart else None).encode())
    return paths
