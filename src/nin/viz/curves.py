"""Learning curves of a run folder: loss, error, learning rate, throughput.

A run folder (written by ``nin train``) holds ``config.json`` and ``metrics.jsonl``, one row per epoch
with ``epoch, step, lr, train_loss, train_error_pct, test_loss, test_error_pct, test_accuracy, img_per_s,
epoch_time_s, wall_time_s, complete``. :func:`nin.train.rundir.load_run` reads them; each ``*_figure``
function returns a matplotlib ``Figure``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from nin.train.rundir import Run, epoch_x
from nin.viz._mpl import ACCENT, PAPER, TEST, TRAIN, new_figure, styled

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)


def _line_axes(fig: Figure, title: str, ylabel: str) -> Axes:
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title, loc="left", fontweight="bold")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    return ax


def _marker(n: int) -> str:
    return "o" if n <= 40 else ""


def _epoch_axis(ax: Axes, x: np.ndarray) -> None:
    """Whole-epoch ticks, and some room around the points so a one-epoch run is not squeezed to an edge."""
    from matplotlib.ticker import MaxNLocator

    if len(x) and np.allclose(x, np.round(x)):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if len(x):
        lo, hi = float(np.min(x)), float(np.max(x))
        pad = max(0.5, 0.04 * (hi - lo))
        ax.set_xlim(max(0.0, lo - pad), hi + pad)


def loss_figure(run: Run) -> Figure:
    """Train and test cross-entropy vs epoch."""
    fig = new_figure(5.6, 3.2)
    x, m = run.epochs, _marker(len(run.rows))
    with styled():
        ax = _line_axes(fig, "Loss", "cross-entropy")
        ax.plot(x, run.series("train_loss"), marker=m, ms=3.5, color=TRAIN, label="train (running, with aug.)")
        ax.plot(x, run.series("test_loss"), marker=m, ms=3.5, color=TEST, label="test")
        _log_if_wide(ax, np.concatenate([run.series("train_loss"), run.series("test_loss")]))
        _epoch_axis(ax, x)
        ax.legend()
    return fig


def error_figure(run: Run, paper_error: float | None = None) -> Figure:
    """Train and test error (%) vs epoch, the best test epoch marked, and the paper's number if any."""
    fig = new_figure(5.6, 3.2)
    x, m = run.epochs, _marker(len(run.rows))
    train, test = run.series("train_error_pct"), run.series("test_error_pct")
    with styled():
        ax = _line_axes(fig, "Error", "error (%)")
        ax.plot(x, train, marker=m, ms=3.5, color=TRAIN, label="train (running, with aug.)")
        ax.plot(x, test, marker=m, ms=3.5, color=TEST, label="test")
        if np.isfinite(test).any():
            i = int(np.nanargmin(test))
            ax.scatter([x[i]], [test[i]], s=90, marker="*", color=ACCENT, zorder=5, label=f"best test {test[i]:.2f}%")
        if paper_error is not None:
            ax.axhline(paper_error, color=PAPER, ls="--", lw=1.2, label=f"paper {paper_error:.2f}%")
        values = np.concatenate([train, test, [paper_error] if paper_error is not None else []])
        _log_if_wide(ax, values)
        _epoch_axis(ax, x)
        ax.legend()
    return fig


def _log_if_wide(ax: Axes, values: np.ndarray) -> None:
    v = values[np.isfinite(values) & (values > 0)]
    if v.size and v.max() / v.min() > 20:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        # Ticks at 1-2-5 steps written plainly (0.5, 2, 50) rather than 5x10^-1, 2x10^0, 5x10^1.
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def lr_figure(run: Run) -> Figure:
    """The learning rate: the schedule step by step (from the config) and the value logged each epoch."""
    fig = new_figure(5.6, 3.2)
    with styled():
        ax = _line_axes(fig, "Learning rate", "lr (weights)")
        curve = _schedule_curve(run)
        if curve is not None:
            ax.plot(*curve, color=TRAIN, lw=1.4, label=f"schedule ({run.config.get('schedule')})")
        ax.plot(
            run.epochs, run.series("lr"), ls="none", marker="o", ms=4, color=ACCENT, label="at the end of each epoch"
        )
        drops = [r for r in run.rows if r.get("lr_drop")]
        for r in drops:
            ax.axvline(epoch_x(r, run.steps_per_epoch), color=PAPER, ls=":", lw=1)
        ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
        ax.legend()
    return fig


def _schedule_curve(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    """lr at every step, replayed from the config, for schedules that are a pure function of the step."""
    spe = run.steps_per_epoch
    if not spe or run.config.get("schedule") == "plateau":
        return None  # plateau drops depend on the train error; the logged values tell the story
    try:
        from nin.train.config import TrainConfig
        from nin.train.optim import Schedule

        cfg = TrainConfig.from_dict(run.config)
        sched = Schedule(cfg, spe)
    except Exception as exc:  # a config from another version: fall back to the logged values
        log.debug("cannot replay the lr schedule: %s", exc)
        return None
    last = int(run.rows[-1].get("step") or sched.total)
    steps = np.arange(0, max(1, min(last, sched.total)))
    stride = max(1, len(steps) // 2000)  # a few thousand points draw the same curve
    steps = steps[::stride]
    return (steps + 1) / spe, np.array([cfg.lr * sched.factor(int(s)) for s in steps])


def throughput_figure(run: Run) -> Figure:
    """Training throughput (images per second) and time per epoch."""
    fig = new_figure(5.6, 3.2)
    x = run.epochs
    with styled():
        ax = _line_axes(fig, "Throughput", "train images / s")
        ips = run.series("img_per_s")
        ax.plot(x, ips, marker=_marker(len(x)), ms=3.5, color=TRAIN, label="per epoch")
        ax.fill_between(x, 0, ips, color=TRAIN, alpha=0.12)
        if np.isfinite(ips).any():
            med = float(np.nanmedian(ips))
            ax.axhline(med, color=ACCENT, ls="--", lw=1.2, label=f"median {med:,.0f} img/s")
        t = run.series("epoch_time_s")
        if np.isfinite(t).any():
            ax.plot([], [], " ", label=f"epoch time: median {np.nanmedian(t):.1f} s")
        ax.legend(loc="lower right")
        ax.set_ylim(bottom=0, top=max(1.0, float(np.nanmax(ips)) * 1.15) if np.isfinite(ips).any() else None)
        _epoch_axis(ax, x)
    return fig


def curves_figures(run: Run, paper_error: float | None = None) -> dict[str, Figure]:
    """All learning-curve figures of a run, by name: loss, error, lr, throughput."""
    paper = paper_error if paper_error is not None else run.config.get("paper_error")
    return {
        "loss": loss_figure(run),
        "error": error_figure(run, paper),
        "lr": lr_figure(run),
        "throughput": throughput_figure(run),
    }
