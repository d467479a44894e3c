"""What a run report shows, gathered from the run folder alone: key numbers, plots, the confusion matrix.

``config.json`` and ``metrics.jsonl`` give the curves and key numbers; ``best.pt`` (else ``last.pt``) gives the
confusion matrix, evaluated on the checkpoint's own test split with the checkpoint's own preprocessor.
:mod:`nin.viz.report_html` renders the result; :mod:`nin.viz.report` writes the files.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nin.errors import ConfigError, NinError
from nin.train.rundir import Run, load_run
from nin.viz._mpl import figure_png
from nin.viz.confusion import confusion_figure, most_confused
from nin.viz.curves import curves_figures

log = logging.getLogger(__name__)

CAPTIONS = {
    "loss": "Cross-entropy per epoch. The train value is the running mean over the epoch's augmented batches.",
    "error": "Error rate per epoch (log scale when it spans decades); the star marks the best test epoch.",
    "lr": "Learning rate of the weights: the schedule replayed step by step from the config, and the logged value.",
    "throughput": "Training images per second in each epoch (evaluation excluded).",
    "confusion": "Rows are true classes, columns predictions; colour is the fraction of the row.",
}


@dataclass
class Fact:
    """One key number of the header: label, value, and an optional small note under it."""

    label: str
    value: str
    note: str = ""
    tone: str = ""  # "good" | "bad" | "" (colours the note)


@dataclass
class ReportData:
    """Everything a report shows, gathered once and rendered as HTML and Markdown."""

    run: Run
    title: str
    subtitle: str
    facts: list[Fact]
    plots: dict[str, bytes]  # name -> PNG
    captions: dict[str, str]
    confusion: np.ndarray | None = None
    classes: list[str] = field(default_factory=list)
    confused: list[tuple[str, str, int]] = field(default_factory=list)
    checkpoint_note: str = ""
    notes: list[str] = field(default_factory=list)


def fmt_duration(seconds: float) -> str:
    """``42 s``, ``3 min 12 s``, ``2 h 05 min``."""
    if not math.isfinite(seconds):
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def pick_checkpoint(run_dir: Path, which: str = "best") -> Path | None:
    """``best`` -> best.pt (else last.pt), ``last`` -> last.pt, anything else is a path."""
    if which in ("best", "last"):
        order = ["best.pt", "last.pt"] if which == "best" else ["last.pt"]
        for name in order:
            if (run_dir / name).is_file():
                return run_dir / name
        return None
    path = Path(which)
    if not path.is_file():
        raise ConfigError(f"--checkpoint {which}: no such file; use best, last or a .pt path")
    return path


def evaluate_confusion(checkpoint: Path, device: str = "cpu") -> tuple[np.ndarray, list[str], dict]:
    """Confusion matrix of a checkpoint on its test split: (cm (K, K), class names, info)."""
    from nin.export.evaluate import load_for_eval
    from nin.train.evaluate import confusion_matrix, predict_logits
    from nin.train.runtime import inference_runtime
    from nin.train.testdata import load_eval_split

    rt = inference_runtime(device)  # fp32: exact numbers, the same on every machine
    ckpt, model, pre = load_for_eval(checkpoint, rt)
    where, ds = load_eval_split(ckpt, source=checkpoint, hint="it has no test split to evaluate")
    logits = predict_logits(model, ds.images, pre, rt)
    classes = list(ckpt["classes"])
    cm = confusion_matrix(logits, ds.labels, len(classes)).numpy()
    info = {
        "dataset": where.dataset,
        "split": where.split,
        "n": int(cm.sum()),
        "accuracy": float(np.trace(cm) / max(1, cm.sum())),
        "epoch": (ckpt.get("metrics") or {}).get("epoch"),
        "params": int(sum(p.numel() for p in model.parameters())),
        "model": ckpt["model"]["name"],
    }
    return cm, classes, info


def gather(
    run_dir: str | os.PathLike,
    checkpoint: str = "best",
    confusion: bool = True,
    device: str = "cpu",
) -> ReportData:
    """Read the run folder, draw every plot, evaluate the confusion matrix; see :func:`build_report`."""
    run = load_run(run_dir)
    cfg = run.config
    rows = run.rows
    last = rows[-1]
    test_err = run.series("test_error_pct")
    best_i = int(np.nanargmin(test_err)) if np.isfinite(test_err).any() else len(rows) - 1
    paper = cfg.get("paper_error")
    final_err = float(last.get("test_error_pct", math.nan))

    facts = [
        Fact("test error", f"{final_err:.2f}%", f"accuracy {100 - final_err:.2f}% after epoch {last['epoch']}"),
        Fact("best test error", f"{test_err[best_i]:.2f}%", f"epoch {rows[best_i]['epoch']}"),
    ]
    if paper is not None:
        delta = final_err - float(paper)
        facts.append(
            Fact(
                "paper",
                f"{float(paper):.2f}%",
                f"{cfg.get('paper_ref') or 'Lin et al. 2013'}; ours {delta:+.2f} pt",
                "good" if delta <= 0 else "bad",
            )
        )
    ips = run.series("img_per_s")
    facts += [
        Fact("epochs", f"{last['epoch']}", f"{last.get('step', '?')} steps of {cfg.get('batch_size', '?')} images"),
        Fact("wall time", fmt_duration(float(last.get("wall_time_s", math.nan))), "training + evaluation"),
        Fact(
            "throughput",
            f"{np.nanmedian(ips):,.0f} img/s" if np.isfinite(ips).any() else "—",
            run.meta.get("runtime", ""),
        ),
    ]

    plots = {name: figure_png(fig) for name, fig in curves_figures(run, paper).items()}
    data = ReportData(
        run=run,
        title=f"{cfg.get('name', run.path.name)} — {cfg.get('model', 'model')} on {cfg.get('dataset', '?')}",
        subtitle=cfg.get("description", ""),
        facts=facts,
        plots=plots,
        captions=dict(CAPTIONS),
    )
    if not confusion:
        data.notes.append("Confusion matrix not computed (--no-confusion).")
        return data
    ckpt_path = pick_checkpoint(run.path, checkpoint)
    if ckpt_path is None:
        data.notes.append("No best.pt or last.pt in the run folder: no confusion matrix.")
        return data
    try:
        cm, classes, info = evaluate_confusion(ckpt_path, device)
    except NinError as exc:  # e.g. the dataset files are not on this machine: the rest of the report stands
        log.warning("confusion matrix skipped: %s", exc)
        data.notes.append(f"Confusion matrix skipped: {exc}")
        return data
    data.confusion, data.classes = cm, classes
    data.confused = most_confused(cm, classes, 10)
    epoch = f", epoch {info['epoch']}" if info.get("epoch") else ""
    data.checkpoint_note = (
        f"{ckpt_path.name}{epoch} on {info['dataset']}:{info['split']} ({info['n']:,} images): "
        f"accuracy {100 * info['accuracy']:.2f}%, error {100 * (1 - info['accuracy']):.2f}%"
    )
    data.facts.append(Fact("parameters", f"{info['params']:,}", info["model"]))
    data.plots["confusion"] = figure_png(
        confusion_figure(cm, classes, f"Confusion matrix — {ckpt_path.name}, {info['dataset']}:{info['split']}")
    )
    return data
