"""The training loop: a plain function over a config (no trainer framework).

Data stays resident as uint8 tensors on the device; augmentation and preprocessing are batched tensor ops.
Every step's randomness (shuffle, augmentation, dropout) is derived from (seed, epoch, step), so a run
resumed from any checkpoint — even mid-epoch — takes exactly the steps of an uninterrupted run. Under
``torchrun`` the same loop runs data-parallel (see :mod:`nin.train.distributed`): ``batch_size`` stays the
global batch, each process trains on its slice, and rank 0 alone logs and writes the run folder.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from nin._version import __version__
from nin.data.dataset import Dataset
from nin.data.preprocess import Preprocessor, build_preprocessor, preprocessor_from_state
from nin.data.registry import load_dataset
from nin.errors import ConfigError, TrainingError
from nin.models import build_model
from nin.train import distributed
from nin.train.batches import EpochBatches, step_seed
from nin.train.checkpoint import load_resumable, make_checkpoint, save_checkpoint
from nin.train.config import TrainConfig, validate
from nin.train.evaluate import evaluate
from nin.train.meter import StepMeter, StepRecord
from nin.train.optim import Schedule, build_optimizer
from nin.train.runtime import Runtime, select_runtime
from nin.train.stall import StallDetector

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


def model_options(cfg: TrainConfig, num_classes: int, in_channels: int) -> dict:
    return {
        "num_classes": num_classes,
        "in_channels": in_channels,
        "dropout": cfg.dropout,
        "batch_norm": cfg.batch_norm,
        "final_relu": cfg.final_relu,
        "init": cfg.init,
    }


def _append_jsonl(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def _keep_epochs_before(path: Path, epoch: int) -> None:
    """Drop metric lines of epochs a resumed run will redo (written after the checkpoint it resumes)."""
    if not path.exists():
        return
    rows = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in rows if json.loads(ln).get("epoch", 0) < epoch]
    path.write_text("".join(ln + "\n" for ln in kept))


def prepare_data(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    return load_dataset(cfg.dataset, cfg.train_split, cfg.data_root), load_dataset(
        cfg.dataset, cfg.test_split, cfg.data_root
    )


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
    """
    t_start = time.perf_counter()
    cfg = validate(cfg)
    rt = runtime or select_runtime(cfg.device, cfg.precision, cfg.channels_last, cfg.compile)
    ctx, rt = distributed.join(rt, cfg.batch_size)
    try:
        rt.setup()
        return _train(cfg, Path(out_dir), resume, progress, rt, ctx, data, on_step, on_epoch, t_start)
    finally:
        distributed.leave(ctx)


def _train(
    cfg: TrainConfig,
    run_dir: Path,
    resume: bool,
    progress: bool,
    rt: Runtime,
    ctx: distributed.DistContext,
    data: tuple[Dataset, Dataset] | None,
    on_step: Callable[[int], None] | None,
    on_epoch: Callable[[dict], None] | None,
    t_start: float,
) -> Result:
    main = ctx.is_main
    run_dir.mkdir(parents=True, exist_ok=True)
    train_ds, test_ds = data or prepare_data(cfg)
    if train_ds.shape != test_ds.shape:
        raise ConfigError(f"train images are {train_ds.shape} but test images {test_ds.shape}")
    classes = train_ds.classes
    opts = model_options(cfg, len(classes), train_ds.shape[0])
    torch.manual_seed(cfg.seed)  # weight init (the same on every rank; DDP broadcasts rank 0's anyway)
    model = build_model(cfg.model, **opts)

    state = load_resumable(run_dir) if resume else None
    if resume and state is None and main:
        log.warning("no resumable checkpoint in %s; starting from scratch", run_dir)
    if state is not None:
        saved = TrainConfig.from_dict(state["train"])
        if saved.replace(epochs=cfg.epochs, max_steps=cfg.max_steps) != cfg:
            raise ConfigError(
                f"{run_dir}/last.pt was trained with a different config; resume with the same "
                "config (only epochs and max_steps may change) or use a new --out folder"
            )
        pre = preprocessor_from_state(state["preprocess"])
        model.load_state_dict(state["state_dict"])
    else:
        pre = build_preprocessor(cfg.preprocess).fit(train_ds.images)

    model = model.to(rt.device, memory_format=rt.memory_format)
    optimizer = build_optimizer(model, cfg, rt)
    n_train, bs = len(train_ds), cfg.batch_size
    # drop_last: every step sees a full batch (stable BN statistics, one compiled shape).
    spe = max(1, n_train // bs)
    schedule = Schedule(cfg, spe)
    stall = StallDetector(len(classes), cfg.stall_steps)
    start_epoch, start_step, history_best = 0, 0, math.inf
    acc = {"loss": 0.0, "correct": 0, "seen": 0}
    if state is not None:
        r = state["resume"]
        optimizer.load_state_dict(r["optimizer"])
        schedule.load_state_dict(r["schedule"])
        start_epoch, start_step, history_best = int(r["epoch"]), int(r["step_in_epoch"]), float(r["best"])
        acc = dict(r["epoch_acc"])
        if main:
            log.info("resuming %s at epoch %d step %d", run_dir, start_epoch + 1, start_step)

    metrics_path = run_dir / "metrics.jsonl"
    if main:
        if state is None:
            metrics_path.unlink(missing_ok=True)
        else:
            _keep_epochs_before(metrics_path, start_epoch + 1)
        info = {
            "config": cfg.to_dict(),
            "runtime": rt.describe(),
            "nin_version": __version__,
            "model_options": opts,
            "classes": list(classes),
            "train_size": n_train,
            "test_size": len(test_ds),
            "world_size": ctx.world,
        }
        (run_dir / "config.json").write_text(json.dumps(info, indent=2) + "\n")

    # The whole training set lives on the device as uint8 (4x smaller than float); batches are gathered there.
    images = train_ds.images.to(rt.device)
    labels = train_ds.labels.to(rt.device)
    test_part = distributed.shard(len(test_ds), ctx)
    test_images, test_labels = test_ds.images[test_part], test_ds.labels[test_part]
    step_model = distributed.wrap(model, ctx, rt)
    if rt.compile:
        step_model = torch.compile(step_model)
    total_steps = schedule.total
    global_step = start_epoch * spe + start_step
    final: dict = {}
    train_time = 0.0
    imgs_seen_timed = 0

    def checkpoint(epoch: int, step_in_epoch: int, metrics: dict) -> dict:
        resume_state = {
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": global_step,
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "best": history_best,
            "epoch_acc": dict(acc),
        }
        return make_checkpoint(
            cfg.model,
            opts,
            model,
            pre.state_dict(),
            classes,
            train_ds.shape,
            train=cfg.to_dict(),
            metrics=metrics,
            resume=resume_state,
        )

    def read_back(meter: StepMeter, epoch: int) -> float | None:
        """Read the pending steps; stop on divergence or a stall; returns the last loss."""
        records, max_logit = meter.flush()
        for rec in records:
            _check_finite(rec, epoch, run_dir, cfg)
            # The detector reads only whether every logit is 0; max |logit| summed over ranks says the same.
            verdict = stall.update(rec.global_step, rec.loss, max_logit)
            if verdict:
                hint = (
                    verdict + " Fixes: --set init=kaiming, --set warmup_epochs=1, "
                    "--set batch_norm=true (the modern recipe), or --set final_relu=false."
                )
                if cfg.on_stall == "stop":
                    raise TrainingError(hint + " (--set on_stall=warn keeps training anyway)")
                if main:
                    log.warning(hint)
        return records[-1].loss if records else None

    lr = cfg.lr * schedule.factor(global_step)
    bar = None
    if progress and main:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=global_step, unit="step", dynamic_ncols=True, leave=False)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            first_step = start_step if epoch == start_epoch else 0
            # A run killed after its last step but before that epoch's evaluation resumes mid-epoch with no
            # steps left: it still evaluates, logs and checkpoints that epoch below.
            if global_step >= total_steps and first_step == 0:
                break
            batches = EpochBatches(
                images,
                labels,
                seed=cfg.seed,
                epoch=epoch,
                batch_size=bs,
                translate=cfg.translate,
                flip=cfg.flip,
                ctx=ctx,
                ahead=rt.augment_ahead,
            )
            meter = StepMeter(acc, ctx, rt.sync_every, bs)
            model.train()
            t_epoch = time.perf_counter()
            next_step = spe  # where this epoch's loop stopped; < spe when max_steps cut it short
            for s in range(first_step, spe):
                if global_step >= total_steps:
                    next_step = s
                    break
                # Dropout: one stream per (step, rank); rank 0 of a data-parallel run matches a single process.
                torch.manual_seed((step_seed(cfg.seed, epoch, s) ^ DROPOUT_SEED_SALT) + ctx.rank)
                xb, y = batches(s)
                x = pre.apply(xb).contiguous(memory_format=rt.memory_format)
                lr = schedule.apply(optimizer, global_step)
                with rt.autocast():
                    logits = step_model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                global_step += 1
                meter.add(s, global_step, loss, logits, y, watch_logits=not stall.done)
                save_now = bool(cfg.checkpoint_every) and global_step % cfg.checkpoint_every == 0 and s + 1 < spe
                if meter.due or save_now:
                    loss_v = read_back(meter, epoch)
                    if bar is not None and loss_v is not None:
                        bar.set_postfix_str(f"ep {epoch + 1}/{cfg.epochs} loss {loss_v:.4f} lr {lr:.3g}", refresh=False)
                if bar is not None:
                    bar.update(1)
                if save_now and main:
                    save_checkpoint(checkpoint(epoch, s + 1, final), run_dir / "last.pt", keep_previous=True)
                if on_step is not None:
                    on_step(global_step)
            read_back(meter, epoch)  # also waits for the device, so the epoch time below is true
            epoch_time = time.perf_counter() - t_epoch
            train_time += epoch_time
            imgs_seen_timed += (next_step - first_step) * bs
            test = evaluate(model, test_images, test_labels, pre, rt)
            test = distributed.combine_eval(test, ctx, rt.device)
            train_loss = acc["loss"] / max(1, acc["seen"])
            train_err = 100.0 * (1 - acc["correct"] / max(1, acc["seen"]))
            complete = next_step == spe
            dropped = schedule.epoch_end(train_err) if complete else False
            row = {
                "epoch": epoch + 1,
                "step": global_step,
                "lr": lr,
                "train_loss": train_loss,
                "train_error_pct": train_err,
                "test_loss": test["loss"],
                "test_error_pct": test["error_pct"],
                "test_accuracy": test["accuracy"],
                "img_per_s": (next_step - first_step) * bs / max(epoch_time, 1e-9),
                "epoch_time_s": epoch_time,
                "wall_time_s": time.perf_counter() - t_start,
                "complete": complete,
            }
            if dropped:
                row["lr_drop"] = True
            final = {**test, "epoch": epoch + 1, "train_error_pct": train_err, "train_loss": train_loss}
            if main:
                _append_jsonl(metrics_path, row)
            if on_epoch is not None:
                on_epoch(row)
            msg = (
                f"epoch {epoch + 1}/{cfg.epochs}  train loss {train_loss:.4f} err {train_err:.2f}%  "
                f"test loss {test['loss']:.4f} err {test['error_pct']:.2f}%  {row['img_per_s']:.0f} img/s"
            )
            if main:
                (bar.write(msg) if bar is not None else log.info(msg))
            # A tie with the stored best rewrites best.pt only when it is missing (a run killed between
            # writing last.pt and best.pt re-evaluates that epoch on resume and must still leave a best.pt).
            is_best = test["error_pct"] < history_best or (
                test["error_pct"] == history_best and not (run_dir / "best.pt").exists()
            )
            history_best = min(history_best, test["error_pct"])
            if complete:
                acc = {"loss": 0.0, "correct": 0, "seen": 0}
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise TrainingError(
                    f"weights became NaN/Inf in epoch {epoch + 1}; the last good checkpoint "
                    f"is kept in {run_dir}. Lower lr or use --set batch_norm=true"
                )
            if main:
                resume_at = (epoch + 1, 0) if complete else (epoch, next_step)
                ckpt = checkpoint(*resume_at, {**final, "best_error_pct": history_best})
                save_checkpoint(ckpt, run_dir / "last.pt", keep_previous=True)
                if is_best:
                    ckpt.pop("resume")
                    save_checkpoint(ckpt, run_dir / "best.pt")
    finally:
        if bar is not None:
            bar.close()
    if not final and state is not None:  # resumed a finished run: nothing to train, report what it reached
        final = {k: v for k, v in state.get("metrics", {}).items() if k != "best_error_pct"}
        if "accuracy" not in final:
            test = distributed.combine_eval(evaluate(model, test_images, test_labels, pre, rt), ctx, rt.device)
            final = {**test, "epoch": start_epoch}
    wall = time.perf_counter() - t_start
    return Result(
        run_dir,
        int(final.get("epoch", start_epoch)),
        global_step,
        final,
        history_best,
        wall,
        train_time,
        imgs_seen_timed / max(train_time, 1e-9),
    )


def _check_finite(rec: StepRecord, epoch: int, run_dir: Path, cfg: TrainConfig) -> None:
    if not math.isfinite(rec.loss):
        raise TrainingError(
            f"loss became {rec.loss} at epoch {epoch + 1} step {rec.step_in_epoch + 1}: training diverged. "
            f"The last good checkpoint is kept in {run_dir}. Lower lr (now {cfg.lr}), add warm-up "
            "(--set warmup_epochs=1) or use batch norm (--set batch_norm=true)"
        )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["Preprocessor", "Result", "count_parameters", "evaluate", "step_seed", "train"]
