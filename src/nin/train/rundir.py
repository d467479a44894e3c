"""The run folder ``nin train --out DIR`` writes, and its reader: the one place that knows its format.

A run folder holds:

- ``config.json``: what ran: the resolved config, the runtime, the nin version, the model options, the class
  names, the split sizes and the number of processes (:func:`write_config`).
- ``metrics.jsonl``: one JSON row per epoch with ``epoch, step, lr, train_loss, train_error_pct, test_loss,
  test_error_pct, test_accuracy, img_per_s, epoch_time_s, wall_time_s, complete`` and ``lr_drop`` on epochs
  where the plateau schedule dropped the lr (:func:`append_metrics`).
- ``last.pt`` (with ``last.prev.pt``) and ``best.pt``: checkpoints (:mod:`nin.train.checkpoint`).

:func:`load_run` reads the first two back for reports and curves.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nin._version import __version__
from nin.errors import ConfigError

log = logging.getLogger(__name__)

CONFIG = "config.json"
METRICS = "metrics.jsonl"
LAST = "last.pt"
BEST = "best.pt"


# --- writing ---------------------------------------------------------------------------------------
def write_config(
    run_dir: Path,
    *,
    config: dict,
    runtime: dict,
    model_options: dict,
    classes: Sequence[str],
    train_size: int,
    test_size: int,
    world_size: int,
) -> None:
    """Write ``config.json``: everything needed to tell what a run trained, and on what."""
    info = {
        "config": config,
        "runtime": runtime,
        "nin_version": __version__,
        "model_options": model_options,
        "classes": list(classes),
        "train_size": train_size,
        "test_size": test_size,
        "world_size": world_size,
    }
    (run_dir / CONFIG).write_text(json.dumps(info, indent=2) + "\n")


def start_metrics(run_dir: Path, resumed_epoch: int | None) -> None:
    """Prepare ``metrics.jsonl``: removed for a fresh run; for a run resumed in epoch ``resumed_epoch``
    (0-based), cut back to the epochs before it, which the resumed run does not redo."""
    path = run_dir / METRICS
    if resumed_epoch is None:
        path.unlink(missing_ok=True)
    else:
        _keep_epochs_before(path, resumed_epoch + 1)


def _keep_epochs_before(path: Path, epoch: int) -> None:
    """Drop metric lines of epochs a resumed run will redo (written after the checkpoint it resumes)."""
    if not path.exists():
        return
    rows = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in rows if json.loads(ln).get("epoch", 0) < epoch]
    path.write_text("".join(ln + "\n" for ln in kept))


def append_metrics(run_dir: Path, row: dict) -> None:
    """Append one epoch's row to ``metrics.jsonl``."""
    with (run_dir / METRICS).open("a") as f:
        f.write(json.dumps(row) + "\n")


# --- reading ---------------------------------------------------------------------------------------
@dataclass
class Run:
    """What a run folder says about itself.

    Attributes:
        path: the folder.
        meta: the whole ``config.json`` (config, runtime, model options, classes, sizes).
        rows: the ``metrics.jsonl`` rows, sorted by epoch.
    """

    path: Path
    meta: dict
    rows: list[dict]

    @property
    def config(self) -> dict:
        """The resolved training config (``TrainConfig.to_dict()``)."""
        return self.meta.get("config", {})

    def series(self, key: str) -> np.ndarray:
        """One metric over the epochs (NaN where a row lacks it)."""
        return np.array([float(r[key]) if r.get(key) is not None else math.nan for r in self.rows])

    @property
    def epochs(self) -> np.ndarray:
        """Epoch numbers as x values; a partial last epoch counts as the fraction of it that ran."""
        return np.array([epoch_x(r, self.steps_per_epoch) for r in self.rows])

    @property
    def steps_per_epoch(self) -> int:
        bs = int(self.config.get("batch_size") or 0)
        n = int(self.meta.get("train_size") or 0)
        return max(1, n // bs) if bs and n else 0


def epoch_x(row: dict, spe: int) -> float:
    """A metrics row's position in epochs, given ``spe`` steps per epoch (0 when unknown)."""
    if row.get("complete", True) or not spe or row.get("step") is None:
        return float(row["epoch"])
    return row["step"] / spe  # a run cut short by max_steps stops inside its last epoch


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read ``config.json`` and ``metrics.jsonl`` of a run folder; a bad folder raises ``ConfigError``."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ConfigError(f"run folder {path} does not exist; pass the --out folder of a `nin train` run")
    metrics = path / METRICS
    if not metrics.is_file():
        raise ConfigError(
            f"{path} has no {METRICS}, so it is not a run folder written by `nin train` "
            "(or the run stopped before its first epoch ended)"
        )
    rows = []
    for n, line in enumerate(metrics.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            # A run killed while writing leaves a half line at the end; the rest is still good.
            log.warning("%s line %d is not JSON; skipping it", metrics, n)
    rows = [r for r in rows if isinstance(r, dict) and "epoch" in r]
    if not rows:
        raise ConfigError(f"{metrics} holds no epoch rows yet; run at least one epoch")
    by_epoch = {int(r["epoch"]): r for r in rows}  # a resumed run rewrites its redone epochs: keep the last
    meta = {}
    if (path / CONFIG).is_file():
        try:
            meta = json.loads((path / CONFIG).read_text())
        except json.JSONDecodeError:
            log.warning("%s/%s is not JSON; the report will lack the config", path, CONFIG)
    return Run(path, meta, [by_epoch[e] for e in sorted(by_epoch)])
