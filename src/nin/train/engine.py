"""The training loop: a plain function over a config (no trainer framework).

Data stays resident as uint8 tensors on the device; augmentation and preprocessing are batched tensor ops.
Every step's randomness (shuffle, augmentation, dropout) is derived from (seed, epoch, step), so a run
resumed from any checkpoint — even mid-epoch — takes exactly the steps of an uninterrupted run. Under
``torchrun`` the same loop runs data-parallel (see :mod:`nin.train.distributed`): ``batch_size`` stays the
global batch, each process trains on its slice, and rank 0 alone logs and writes the run folder.

Read :func:`_run` top to bottom: set-up, then per epoch :func:`train_one_epoch`, evaluation, the metrics row
and the last/best checkpoints.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from nin.data.dataset import Dataset
from nin.errors import TrainingError
from nin.train import distributed, rundir
from nin.train.batches import EpochBatches, step_seed
from nin.train.checkpoint import save_checkpoint
from nin.train.config import TrainConfig, validate
from nin.train.evaluate import evaluate
from nin.train.meter import StepMeter, StepRecord
from nin.train.prepare import Parts, prepare
from nin.train.resize import low_res, low_res_steps
from nin.train.resume import ResumeState
from nin.train.runtime import Runtime, select_runtime

if TYPE_CHECKING:
    from tqdm import tqdm

log = logging.getLogger(__name__)

DROPOUT_SEED_SALT = 0x5DEECE66D  # keeps the dropout stream apart from the augmentation stream of a step


@dataclass
class Result:
    run_dir: Path
    epochs: int
    steps: int
    final: dict  # test metrics of the last epoch
    best_error_pct: float
    wall_time_s: float
    train_time_s: float
    img_per_s: float


@dataclass
class EpochSteps:
    """What :func:`train_one_epoch` did."""

    seconds: float
    lr: float  # the weights' lr at the last step taken
    complete: bool  # False when max_steps ended the run inside the epoch
    images: int  # training images (over all ranks) in those steps


def train(
    cfg: TrainConfig,
    *,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    runtime: Runtime | None = None,
    data: tuple[Dataset, Dataset] | None = None,
    on_step: Callable[[int], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    on_start: Callable[[Parts], None] | None = None,
) -> Result:
    """Train ``cfg`` and write the run folder ``out_dir`` (config.json, metrics.jsonl, last.pt, best.pt).

    Started by ``torchrun`` (``WORLD_SIZE`` > 1), or inside an initialised process group, it trains
    data-parallel: ``cfg.batch_size`` is the global batch and only rank 0 writes files and shows progress.

    Args:
        cfg: the experiment.
        out_dir: run folder; created if absent (on storage every rank can read, for multi-node resume).
        resume: continue from ``out_dir/last.pt`` (or ``last.prev.pt`` if the last one is damaged).
        progress: show a progress bar on stderr.
        runtime: device/precision policy (default: :func:`select_runtime` from the config).
        data: (train, test) datasets to use instead of loading ``cfg.dataset``.
        on_step: called with the global step number after every optimiser step (and any mid-epoch
            checkpoint); an exception it raises stops training as a crash would.
        on_epoch: called with each epoch's metrics row (as written to metrics.jsonl), e.g. for TensorBoard.
        on_start: called once with the run's parts (model, optimiser, data) before the first step, e.g. to
            keep a weight average (:mod:`nin.train.ema`) or score the final model another way.
    """
    t_start = time.perf_counter()
    cfg = validate(cfg)
    rt = runtime or select_runtime(cfg.device, cfg.precision, cfg.channels_last, cfg.compile)
    ctx, rt = distributed.join(rt, cfg.batch_size)
    try:
        rt.setup()
        result = _run(cfg, Path(out_dir), resume, progress, rt, ctx, data, on_step, on_epoch, on_start, t_start)
    except BaseException:
        distributed.leave(ctx)
        raise
    distributed.leave(ctx, finished=True)
    return result


def _run(
    cfg: TrainConfig,
    run_dir: Path,
    resume: bool,
    progress: bool,
    rt: Runtime,
    ctx: distributed.DistContext,
    data: tuple[Dataset, Dataset] | None,
    on_step: Callable[[int], None] | None,
    on_epoch: Callable[[dict], None] | None,
    on_start: Callable[[Parts], None] | None,
    t_start: float,
) -> Result:
    """The body of :func:`train` once the runtime and the process group are set up."""
    # Set-up: data on the device, model, preprocessing, optimiser, schedule; restored from last.pt on resume.
    run_dir.mkdir(parents=True, exist_ok=True)
    p, state, resumed_metrics = prepare(cfg, run_dir, resume, rt, ctx, data)
    start_epoch = state.epoch
    if on_start is not None:
        on_start(p)
    # The run folder: config.json says what runs; metrics.jsonl keeps the epochs a resumed run does not redo.
    if ctx.is_main:
        rundir.start_metrics(run_dir, state.epoch if resumed_metrics is not None else None)
        rundir.write_config(
            run_dir,
            config=cfg.to_dict(),
            runtime=rt.describe(),
            model_options=p.model_options,
            classes=p.classes,
            train_size=p.train_size,
            test_size=p.test_size,
            world_size=ctx.world,
        )

    # The epoch loop. It stops at cfg.epochs, or where max_steps ends the run (maybe inside an epoch).
    bar = _progress_bar(p, state) if progress and ctx.is_main else None
    final: dict = {}  # the last evaluated epoch's metrics
    train_time, images_timed = 0.0, 0
    try:
        while state.epoch < cfg.epochs:
            # Nothing left to train at an epoch's start (a finished run resumed). A run killed after its last
            # step but before that epoch's evaluation resumes mid-epoch instead: it still evaluates, logs and
            # checkpoints that epoch.
            if state.step_in_epoch == 0 and state.global_step >= p.schedule.total:
                break
            # Train: the epoch's steps from where the run stands.
            steps = train_one_epoch(p, state, metrics=final, bar=bar, on_step=on_step)
            train_time += steps.seconds
            images_timed += steps.images
            # Evaluate: every rank scores its shard of the test split; the sums are combined.
            test = _evaluate(p)
            # Log: one metrics.jsonl row per epoch (the plateau schedule reads the epoch's train error here).
            row, final = _log_epoch(p, state, steps, test, t_start, bar)
            if on_epoch is not None:
                on_epoch(row)
            # Checkpoint: last.pt where the run now stands, best.pt when the test error is the lowest so far.
            _save_epoch(p, state, final, steps.complete)
            if not steps.complete:  # max_steps ended the run inside this epoch
                break
    finally:
        if bar is not None:
            bar.close()

    # The end: a resumed run with nothing left to train reports what its checkpoint reached.
    if not final and resumed_metrics is not None:
        final = {k: v for k, v in resumed_metrics.items() if k != "best_error_pct"}
        if "accuracy" not in final:
            final = {**_evaluate(p), "epoch": start_epoch}
    return Result(
        run_dir,
        int(final.get("epoch", start_epoch)),
        state.global_step,
        final,
        state.best,
        time.perf_counter() - t_start,
        train_time,
        images_timed / max(train_time, 1e-9),
    )


def train_one_epoch(
    p: Parts,
    state: ResumeState,
    *,
    metrics: dict,
    bar: tqdm | None = None,
    on_step: Callable[[int], None] | None = None,
) -> EpochSteps:
    """Train from ``state`` to the end of its epoch, or until ``max_steps``; ``state`` follows every step.

    Args:
        p: the run's parts.
        state: where the run stands; its step counters and training sums advance in place.
        metrics: the metrics that mid-epoch checkpoints carry (the last evaluated epoch's).
        bar: a tqdm progress bar, or None.
        on_step: called with the global step after every step (after its mid-epoch checkpoint).
    """
    cfg, rt, ctx = p.cfg, p.rt, p.ctx
    epoch, first, spe = state.epoch, state.step_in_epoch, p.steps_per_epoch
    batches = EpochBatches(
        p.images,
        p.labels,
        seed=cfg.seed,
        epoch=epoch,
        batch_size=cfg.batch_size,
        translate=cfg.translate,
        flip=cfg.flip,
        ctx=ctx,
        ahead=rt.augment_ahead,
        cutout=cfg.cutout,
    )
    meter = StepMeter(state.sums, ctx, rt.sync_every, cfg.batch_size)
    p.model.train()
    lr = cfg.lr * p.schedule.factor(state.global_step)
    t0 = time.perf_counter()
    for s in range(first, spe):
        if state.global_step >= p.schedule.total:
            break
        # Dropout: one stream per (step, rank); rank 0 of a data-parallel run matches a single process.
        torch.manual_seed((step_seed(cfg.seed, epoch, s) ^ DROPOUT_SEED_SALT) + ctx.rank)
        xb, y = batches(s)
        x = p.pre.apply(xb)
        # The boundary follows the schedule's total, which a time budget may re-size mid-run.
        if cfg.low_res and state.global_step < low_res_steps(cfg.low_res_share, p.schedule.total):
            x = low_res(x, cfg.low_res)
        x = x.contiguous(memory_format=rt.memory_format)
        lr = p.schedule.apply(p.optimizer, state.global_step)
        p.optimizer.zero_grad(set_to_none=True)
        loss, logits = forward_backward(p.step_model, x, y, p.rt, cfg.label_smoothing)
        p.optimizer.step()
        state.global_step += 1
        state.step_in_epoch = s + 1
        meter.add(s, state.global_step, loss, logits, y, watch_logits=not p.stall.done)
        save_now = bool(cfg.checkpoint_every) and state.global_step % cfg.checkpoint_every == 0 and s + 1 < spe
        if meter.due or save_now:
            loss_v = _read_back(p, meter, epoch)
            if bar is not None and loss_v is not None:
                bar.set_postfix_str(f"ep {epoch + 1}/{p.schedule.epochs} loss {loss_v:.4f} lr {lr:.3g}", refresh=False)
        if bar is not None:
            bar.update(1)
        if save_now and ctx.is_main:
            save_checkpoint(p.checkpoint(state, metrics), p.run_dir / rundir.LAST, keep_previous=True)
        if on_step is not None:
            on_step(state.global_step)
    _read_back(p, meter, epoch)  # also waits for the device, so the epoch time below is true
    seconds, stop = time.perf_counter() - t0, state.step_in_epoch
    return EpochSteps(seconds, lr, complete=stop == spe, images=(stop - first) * cfg.batch_size)


def forward_backward(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    rt: Runtime,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's mean cross-entropy and its gradients (accumulated into ``.grad``); returns (loss, logits)."""
    with rt.autocast():
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    loss.backward()
    return loss.detach(), logits.detach()


def _read_back(p: Parts, meter: StepMeter, epoch: int) -> float | None:
    """Read the pending steps; stop on divergence or a stall; returns the last loss."""
    records, max_logit = meter.flush()
    for rec in records:
        _check_finite(rec, epoch, p.run_dir, p.cfg)
        # The detector reads only whether every logit is 0; max |logit| summed over ranks says the same.
        verdict = p.stall.update(rec.global_step, rec.loss, max_logit)
        if verdict:
            hint = (
                verdict + " Fixes: --set init=kaiming, --set warmup_epochs=1, "
                "--set batch_norm=true (the modern recipe), or --set final_relu=false."
            )
            if p.cfg.on_stall == "stop":
                raise TrainingError(hint + " (--set on_stall=warn keeps training anyway)")
            if p.ctx.is_main:
                log.warning(hint)
    return records[-1].loss if records else None


def _check_finite(rec: StepRecord, epoch: int, run_dir: Path, cfg: TrainConfig) -> None:
    if not math.isfinite(rec.loss):
        raise TrainingError(
            f"loss became {rec.loss} at epoch {epoch + 1} step {rec.step_in_epoch + 1}: training diverged. "
            f"The last good checkpoint is kept in {run_dir}. Lower lr (now {cfg.lr}), add warm-up "
            "(--set warmup_epochs=1) or use batch norm (--set batch_norm=true)"
        )


def _evaluate(p: Parts) -> dict:
    """Test metrics of the model as it is, over the whole test split (every rank's shard)."""
    test = evaluate(p.model, p.test_images, p.test_labels, p.pre, p.rt)
    return distributed.combine_eval(test, p.ctx, p.rt.device)


def _log_epoch(
    p: Parts, state: ResumeState, steps: EpochSteps, test: dict, t_start: float, bar: tqdm | None
) -> tuple[dict, dict]:
    """Append the epoch's metrics row and print its summary; returns the row and the epoch's metrics."""
    sums = state.sums
    train_loss = sums["loss"] / max(1, sums["seen"])
    train_err = 100.0 * (1 - sums["correct"] / max(1, sums["seen"]))
    dropped = p.schedule.epoch_end(train_err) if steps.complete else False
    row = {
        "epoch": state.epoch + 1,
        "step": state.global_step,
        "lr": steps.lr,
        "train_loss": train_loss,
        "train_error_pct": train_err,
        "test_loss": test["loss"],
        "test_error_pct": test["error_pct"],
        "test_accuracy": test["accuracy"],
        "img_per_s": steps.images / max(steps.seconds, 1e-9),
        "epoch_time_s": steps.seconds,
        "wall_time_s": time.perf_counter() - t_start,
        "complete": steps.complete,
    }
    if dropped:
        row["lr_drop"] = True
    final = {**test, "epoch": state.epoch + 1, "train_error_pct": train_err, "train_loss": train_loss}
    if p.ctx.is_main:
        rundir.append_metrics(p.run_dir, row)
        # The epochs the schedule now ends in (a time budget may re-size it), not the cap it may grow to.
        msg = (
            f"epoch {state.epoch + 1}/{p.schedule.epochs}  train loss {train_loss:.4f} err {train_err:.2f}%  "
            f"test loss {test['loss']:.4f} err {test['error_pct']:.2f}%  {row['img_per_s']:.0f} img/s"
        )
        (bar.write(msg) if bar is not None else log.info(msg))
    return row, final


def _save_epoch(p: Parts, state: ResumeState, final: dict, complete: bool) -> None:
    """Record the epoch's test error, move ``state`` on if the epoch is complete, and write last.pt (and best.pt)."""
    error = final["error_pct"]
    # A tie with the stored best rewrites best.pt only when it is missing (a run killed between
    # writing last.pt and best.pt re-evaluates that epoch on resume and must still leave a best.pt).
    is_best = error < state.best or (error == state.best and not (p.run_dir / rundir.BEST).exists())
    state.best = min(state.best, error)
    if not all(torch.isfinite(w).all() for w in p.model.parameters()):
        raise TrainingError(
            f"weights became NaN/Inf in epoch {final['epoch']}; the last good checkpoint "
            f"is kept in {p.run_dir}. Lower lr or use --set batch_norm=true"
        )
    if complete:
        state.next_epoch()
    if p.ctx.is_main:
        ckpt = p.checkpoint(state, {**final, "best_error_pct": state.best})
        save_checkpoint(ckpt, p.run_dir / rundir.LAST, keep_previous=True)
        if is_best:
            ckpt.pop("resume")
            save_checkpoint(ckpt, p.run_dir / rundir.BEST)


def _progress_bar(p: Parts, state: ResumeState) -> tqdm:
    from tqdm.auto import tqdm

    return tqdm(total=p.schedule.total, initial=state.global_step, unit="step", dynamic_ncols=True, leave=False)
