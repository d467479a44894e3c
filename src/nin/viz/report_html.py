"""Rendering of :class:`nin.viz.report_data.ReportData`: a self-contained HTML page and a Markdown summary.

The HTML page has no external resource: CSS inline, plots as base64 PNG ``data:`` URIs, so it can be mailed
or attached to an issue as one file.
"""

from __future__ import annotations

import base64
import json
import math
from html import escape
from pathlib import Path

from nin._version import __version__
from nin.viz.report_data import ReportData

PLOT_ORDER = ("error", "loss", "lr", "throughput")
PLOT_TITLES = {
    "error": "Error",
    "loss": "Loss",
    "lr": "Learning rate",
    "throughput": "Throughput",
    "confusion": "Confusion matrix",
}
# Columns of the per-epoch table: (key, header, format)
EPOCH_COLUMNS = (
    ("epoch", "epoch", "{:d}"),
    ("lr", "lr", "{:.4g}"),
    ("train_loss", "train loss", "{:.4f}"),
    ("train_error_pct", "train err %", "{:.2f}"),
    ("test_loss", "test loss", "{:.4f}"),
    ("test_error_pct", "test err %", "{:.2f}"),
    ("img_per_s", "img/s", "{:,.0f}"),
    ("epoch_time_s", "epoch s", "{:.1f}"),
    ("wall_time_s", "wall s", "{:.0f}"),
)

CSS = """
:root { --ink:#1f2328; --muted:#656d76; --line:#d8dee4; --bg:#f6f8fa; --good:#1a7f37; --bad:#cf222e;
        --accent:#0969da; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 32px 28px 56px; }
header h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
header .sub { color: var(--muted); margin: 0 0 22px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(165px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; background: var(--bg); }
.card .label { font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.card .value { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; margin: 2px 0; }
.card .note { font-size: 12.5px; color: var(--muted); }
.card .note.good { color: var(--good); } .card .note.bad { color: var(--bad); }
.card.primary { border-color: var(--accent); background: #ddf4ff; }
h2 { font-size: 19px; margin: 38px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(470px, 1fr)); gap: 18px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 10px; padding: 10px; background: #fff; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 13px; color: var(--muted); margin-top: 6px; }
.confusion { display: grid; grid-template-columns: minmax(0, 3fr) minmax(240px, 2fr); gap: 18px; align-items: start; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; font-variant-numeric: tabular-nums; }
th, td { text-align: right; padding: 5px 9px; border-bottom: 1px solid var(--line); }
th { background: var(--bg); font-weight: 600; } td:first-child, th:first-child { text-align: left; }
tr.best td { background: #fff8c5; }
.kv td { text-align: left; } .kv td:first-child { color: var(--muted); width: 38%; }
.scroll { max-height: 460px; overflow: auto; border: 1px solid var(--line); border-radius: 10px; }
details summary { cursor: pointer; color: var(--accent); margin: 6px 0; }
.note-box { background: #fff8c5; border: 1px solid #d4a72c66; border-radius: 8px; padding: 8px 12px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12.5px; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
@media (max-width: 760px) { .confusion { grid-template-columns: 1fr; } .plots { grid-template-columns: 1fr; } }
"""


def _img(png: bytes, alt: str, name: str) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img id="plot-{escape(name)}" alt="{escape(alt)}" src="data:image/png;base64,{b64}">'


def _fmt(value, pattern: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    try:
        return pattern.format(int(value) if pattern == "{:d}" else value)
    except (ValueError, TypeError):
        return str(value)


def _value(v) -> str:
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    return "—" if v is None else str(v)


def _best_epoch(data: ReportData) -> int | None:
    errs = [(r.get("test_error_pct", math.inf), r["epoch"]) for r in data.run.rows]
    return min(errs)[1] if errs else None


def render_html(data: ReportData, generated: str) -> str:
    """The whole report as one HTML document (no external resources)."""
    cards = []
    for i, f in enumerate(data.facts):
        cls = "card primary" if i == 0 else "card"
        note = f'<div class="note {escape(f.tone)}">{escape(f.note)}</div>' if f.note else ""
        cards.append(
            f'<div class="{cls}"><div class="label">{escape(f.label)}</div>'
            f'<div class="value">{escape(f.value)}</div>{note}</div>'
        )
    figures = [
        f"<figure>{_img(data.plots[n], PLOT_TITLES[n], n)}<figcaption>{escape(data.captions[n])}</figcaption></figure>"
        for n in PLOT_ORDER
        if n in data.plots
    ]
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(data.title)}</title><style>{CSS}</style></head><body><main>",
        f"<header><h1>{escape(data.title)}</h1>",
        f'<p class="sub">{escape(data.subtitle)} · run folder <code>{escape(data.run.path.name)}</code></p>',
        f'<div class="cards">{"".join(cards)}</div></header>',
        f'<h2>Learning curves</h2><div class="plots">{"".join(figures)}</div>',
    ]
    if "confusion" in data.plots:
        confused = "".join(
            f"<tr><td>{escape(t)}</td><td>{escape(p)}</td><td>{n}</td></tr>" for t, p, n in data.confused
        )
        table = (
            f"<table><thead><tr><th>true</th><th>predicted as</th><th>count</th></tr></thead><tbody>{confused}"
            "</tbody></table>"
            if confused
            else "<p>No mistakes.</p>"
        )
        parts.append(
            f"<h2>Confusion matrix</h2><p>{escape(data.checkpoint_note)}</p><div class='confusion'>"
            f"<figure>{_img(data.plots['confusion'], 'Confusion matrix', 'confusion')}"
            f"<figcaption>{escape(data.captions['confusion'])}</figcaption></figure>"
            f"<div><h3>Most confused pairs</h3>{table}</div></div>"
        )
    for note in data.notes:
        parts.append(f'<p class="note-box">{escape(note)}</p>')
    best = _best_epoch(data)
    head = "".join(f"<th>{escape(h)}</th>" for _, h, _ in EPOCH_COLUMNS)
    body = "".join(
        f"<tr{' class=best' if r['epoch'] == best else ''}>"
        + "".join(f"<td>{_fmt(r.get(k), p)}</td>" for k, _, p in EPOCH_COLUMNS)
        + "</tr>"
        for r in data.run.rows
    )
    parts.append(
        "<h2>Per-epoch metrics</h2><p>The best test epoch is highlighted.</p>"
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )
    cfg_rows = "".join(
        f"<tr><td>{escape(k)}</td><td><code>{escape(_value(v))}</code></td></tr>" for k, v in data.run.config.items()
    )
    extra = {k: v for k, v in data.run.meta.items() if k not in ("config", "classes")}
    extra_rows = "".join(
        f"<tr><td>{escape(k)}</td><td><code>{escape(_value(v))}</code></td></tr>" for k, v in extra.items()
    )
    parts.append(
        "<h2>Configuration</h2><details open><summary>resolved training config</summary>"
        f'<table class="kv"><tbody>{cfg_rows}</tbody></table></details>'
        f'<details><summary>runtime and data</summary><table class="kv"><tbody>{extra_rows}</tbody></table></details>'
    )
    parts.append(
        f"<footer>Generated {escape(generated)} by nin {escape(__version__)} (<code>nin report</code>) from "
        "config.json, metrics.jsonl and the run's checkpoint. Paper: Lin, Chen, Yan, “Network In Network”, "
        "arXiv:1312.4400.</footer></main></body></html>"
    )
    return "\n".join(parts) + "\n"


def render_markdown(data: ReportData, plots: dict[str, Path], generated: str) -> str:
    """A Markdown summary: key numbers, the plots (as files next to it), the last epochs, the config."""
    lines = [f"# {data.title}", ""]
    if data.subtitle:
        lines += [data.subtitle, ""]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {f.label} | **{f.value}**{' — ' + f.note if f.note else ''} |" for f in data.facts]
    lines.append("")
    for name in (*PLOT_ORDER, "confusion"):
        if name in plots:
            lines += [f"## {PLOT_TITLES[name]}", "", f"![{PLOT_TITLES[name]}]({plots[name].as_posix()})", ""]
            if name == "confusion" and data.checkpoint_note:
                lines += [data.checkpoint_note, ""]
    if data.confused:
        lines += ["Most confused pairs: " + ", ".join(f"{t} → {p} ({n})" for t, p, n in data.confused[:5]), ""]
    lines += [f"> {note}" for note in data.notes]
    if data.notes:
        lines.append("")
    lines += ["## Per-epoch metrics", ""]
    lines.append("| " + " | ".join(h for _, h, _ in EPOCH_COLUMNS) + " |")
    lines.append("|" + "---:|" * len(EPOCH_COLUMNS))
    for r in data.run.rows:
        lines.append("| " + " | ".join(_fmt(r.get(k), p) for k, _, p in EPOCH_COLUMNS) + " |")
    lines += ["", "## Config", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | `{_value(v)}` |" for k, v in data.run.config.items()]
    lines += ["", f"_Generated {generated} by nin {__version__} (`nin report`)._", ""]
    return "\n".join(lines)
