"""``reproduce(rows, ...)``: train each row's config and write the report after every row.

Rows whose data is absent are reported as "data not found" with the command that fetches it; a row whose
training fails (a stall, a diverged loss, out of memory) is reported with its error and the others go on.
``smoke=True`` runs every row for two steps on synthetic data of the row's shape (tests, CI).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from nin._version import __version__
from nin.data.registry import dataset_info
from nin.data.synthetic import synthetic_dataset
from nin.errors import NinError
from nin.reproduce.report import write_report
from nin.reproduce.rows import data_status, row_config, scale_epochs
from nin.train.config import TrainConfig, apply_overrides
from nin.train.runtime import Runtime, machine_info, select_runtime

log = logging.getLogger(__name__)

SMOKE_STEPS = 2
SMOKE_BATCH = 4  # images per step: enough to run every layer, BN and dropout included


@dataclass
class RowResult:
    """One line of the report (percentages are test error in %)."""

    row: str
    config: str
    recipe: str
    dataset: str
    model: str
    paper_error: float | None
    paper_ref: str
    status: str  # ok | smoke | data not found | failed
    error_pct: float | None = None  # test error after the last epoch
    best_error_pct: float | None = None  # lowest test error seen after any epoch
    gap_pp: float | None = None  # ours (last epoch) - paper, percentage points
    epochs: int = 0
    epochs_planned: int = 0
    steps: int = 0
    wall_time_s: float = 0.0
    train_time_s: float = 0.0
    run_dir: str = ""
    fetch: str = ""  # what to run when the data is missing
    message: str = ""


def _smoke_data(cfg: TrainConfig):
    info = dataset_info(cfg.dataset)
    k = info.num_classes or 10
    n = 2 * SMOKE_BATCH * SMOKE_STEPS
    return (
        synthetic_dataset(info.shape, k, n, seed=1, name=f"smoke-{cfg.dataset}:train"),
        synthetic_dataset(info.shape, k, 8, seed=2, name=f"smoke-{cfg.dataset}:test"),
    )


def _run_row(
    row: str, cfg: TrainConfig, run_dir: Path, smoke: bool, resume: bool, progress: bool, runtime: Runtime | None
) -> RowResult:
    from nin.train.engine import train

    res = RowResult(
        row,
        cfg.name,
        "",
        cfg.dataset,
        cfg.model,
        cfg.paper_error,
        cfg.paper_ref,
        "smoke" if smoke else "ok",
        epochs_planned=cfg.epochs,
        run_dir=str(run_dir),
    )
    data = None
    if smoke:
        data = _smoke_data(cfg)
        cfg = cfg.replace(epochs=1, max_steps=SMOKE_STEPS, batch_size=SMOKE_BATCH, stall_steps=0, device="cpu")
        runtime = Runtime(torch.device("cpu"), None, False, False)
    else:
        ok, fetch = data_status(cfg)
        if not ok:
            res.status, res.fetch, res.run_dir = "data not found", fetch, ""
            return res
    t0 = time.perf_counter()
    try:
        r = train(
            cfg,
            out_dir=run_dir,
            resume=resume and (run_dir / "last.pt").exists(),
            progress=progress,
            runtime=runtime,
            data=data,
        )
    except NinError as exc:
        res.status, res.message = "failed", str(exc)
        res.wall_time_s = time.perf_counter() - t0
        return res
    except Exception as exc:  # one broken row (out of memory, a bug) must not cost the other rows
        log.error("row %s crashed:\n%s", row, traceback.format_exc())
        res.status, res.message = "failed", f"{type(exc).__name__}: {exc}"
        res.wall_time_s = time.perf_counter() - t0
        return res
    final = r.final or _last_metrics(run_dir)
    res.error_pct = final.get("error_pct")
    best = r.best_error_pct if math.isfinite(r.best_error_pct) else final.get("best_error_pct")
    res.best_error_pct = best if best is not None else res.error_pct
    res.epochs, res.steps = r.epochs, r.steps
    res.wall_time_s, res.train_time_s = r.wall_time_s, r.train_time_s
    if res.error_pct is not None and res.paper_error is not None:
        res.gap_pp = res.error_pct - res.paper_error
    return res


def _last_metrics(run_dir: Path) -> dict:
    """The metrics saved in ``last.pt`` (a resumed run that had already finished trains nothing)."""
    from nin.train.checkpoint import load_checkpoint

    try:
        return dict(load_checkpoint(run_dir / "last.pt").get("metrics", {}))
    except NinError:
        return {}


def reproduce(
    rows: list[str] | tuple[str, ...],
    out_dir: str | Path,
    *,
    data_root: str | None = None,
    recipe: str = "paper",
    epochs_scale: float = 1.0,
    overrides: list[str] | tuple[str, ...] = (),
    smoke: bool = False,
    resume: bool = False,
    progress: bool = False,
    command: str = "",
) -> dict:
    """Run ``rows`` and write ``report.md``, ``report.json`` and ``report.png`` into ``out_dir``.

    Args:
        rows: paper rows (:data:`nin.reproduce.rows.PAPER_ROWS`) or any config names.
        out_dir: report folder; each row trains into ``out_dir/<config>/``.
        data_root: where the datasets are (default: each config's, else the default data root).
        recipe: ``paper`` or ``modern`` (``<row>_modern`` configs).
        epochs_scale: multiply every row's epoch budget (and plateau patience) by this.
        overrides: ``key=value`` config overrides applied to every row (e.g. ``device=cuda``).
        smoke: a few steps per row on synthetic data of the row's shape; numbers mean nothing.
        resume: continue rows from ``out_dir/<config>/last.pt`` where it exists.

    Returns: the report as written to ``report.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    configs = []
    for row in rows:  # resolve everything first: a typo fails before hours of training
        cfg = row_config(row, recipe)
        if data_root:
            cfg = cfg.replace(data_root=data_root)
        cfg = scale_epochs(apply_overrides(cfg, list(overrides)), epochs_scale)
        configs.append((row, cfg))
    rt = None
    if configs and not smoke:
        first = configs[0][1]
        rt = select_runtime(first.device, first.precision, first.channels_last, first.compile)
    report = {
        "nin_version": __version__,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": command,
        "recipe": recipe,
        "epochs_scale": epochs_scale,
        "smoke": smoke,
        "data_root": data_root,
        "machine": machine_info(rt),
        "rows": [],
    }
    scratch = tempfile.TemporaryDirectory(prefix="nin-smoke-") if smoke else None
    try:
        for row, cfg in configs:
            run_dir = Path(scratch.name if scratch else out) / cfg.name
            log.info("reproduce: %s (%s, %d epochs)", row, cfg.name, cfg.epochs)
            res = _run_row(row, cfg, run_dir, smoke, resume, progress, None)
            res.recipe = recipe
            if smoke:
                res.run_dir = ""  # smoke runs train in a scratch folder that is removed
            report["rows"].append(asdict(res))
            write_report(report, out)
    finally:
        if scratch is not None:
            scratch.cleanup()
    return report
