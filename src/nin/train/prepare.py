"""A run's set-up: the data on the device, the model, its preprocessing, the optimiser and the schedule.

:func:`prepare` builds them fresh, or from the run folder's last checkpoint when resuming; the training
loop (:mod:`nin.train.engine`) only reads them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from nin.data.dataset import Dataset
from nin.data.preprocess import Preprocessor, build_preprocessor, preprocessor_from_state
from nin.data.registry import load_dataset
from nin.errors import ConfigError
from nin.models import build_model
from nin.train import distributed
from nin.train.checkpoint import make_checkpoint
from nin.train.config import TrainConfig
from nin.train.optim import Schedule, build_optimizer
from nin.train.resume import ResumeState, resumable_checkpoint
from nin.train.runtime import Runtime
from nin.train.stall import StallDetector
from nin.train.stem_whiten import first_conv, fix_stem_norm, whiten_stem

log = logging.getLogger(__name__)


def model_options(cfg: TrainConfig, num_classes: int, in_channels: int) -> dict:
    """The ``build_model`` options of ``cfg`` for data with ``num_classes`` classes and ``in_channels`` channels."""
    return {
        "num_classes": num_classes,
        "in_channels": in_channels,
        "dropout": cfg.dropout,
        "batch_norm": cfg.batch_norm,
        "final_relu": cfg.final_relu,
        "init": cfg.init,
    }


# Images whose patches the whitened stem is fitted on (the first ones of the training split).
WHITEN_IMAGES = 10_000


def _whiten(model: nn.Module, pre: Preprocessor, train_ds: Dataset, fresh: bool, fix_norm: bool) -> None:
    """Whiten and freeze the first convolution (a fresh run), or only freeze it (a resumed run: the checkpoint
    holds the whitened filters); ``fix_norm``: fix the batch norm after it at the identity. Before the optimiser
    is built, which leaves frozen weights out."""
    stem = first_conv(model)
    if stem is None:
        raise ConfigError("whiten_stem needs a model whose first layer is a convolution")
    if fresh:
        whiten_stem(stem, pre.apply(train_ds.images[:WHITEN_IMAGES]))
    else:
        stem.weight.requires_grad_(False)
    if fix_norm:
        try:
            fix_stem_norm(model)
        except ValueError as e:
            raise ConfigError(f"freeze_stem_bn: {e}") from None


def _load_data(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    """The (train, test) splits ``cfg`` names."""
    return load_dataset(cfg.dataset, cfg.train_split, cfg.data_root), load_dataset(
        cfg.dataset, cfg.test_split, cfg.data_root
    )


@dataclass
class Parts:
    """What set-up builds; fixed for the whole run (the weights and optimiser state change in place)."""

    cfg: TrainConfig
    run_dir: Path
    rt: Runtime
    ctx: distributed.DistContext
    model: nn.Module  # the bare model on the device (evaluation, checkpoints)
    step_model: nn.Module  # what the steps call: the model, wrapped for data-parallel and compiled as asked
    model_options: dict
    pre: Preprocessor
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    stall: StallDetector
    classes: Sequence[str]
    input_shape: tuple[int, int, int]
    images: torch.Tensor  # the whole training set, uint8 on the device
    labels: torch.Tensor
    test_images: torch.Tensor  # this rank's shard of the test split (CPU; evaluation moves it in batches)
    test_labels: torch.Tensor
    train_size: int
    test_size: int

    @property
    def steps_per_epoch(self) -> int:
        return self.schedule.spe

    def checkpoint(self, state: ResumeState, metrics: dict) -> dict:
        """A resumable checkpoint of the run as it stands at ``state``."""
        return make_checkpoint(
            self.cfg.model,
            self.model_options,
            self.model,
            self.pre.state_dict(),
            self.classes,
            self.input_shape,
            train=self.cfg.to_dict(),
            metrics=metrics,
            resume=state.to_dict(self.optimizer, self.schedule),
        )


def prepare(
    cfg: TrainConfig,
    run_dir: Path,
    resume: bool,
    rt: Runtime,
    ctx: distributed.DistContext,
    data: tuple[Dataset, Dataset] | None,
) -> tuple[Parts, ResumeState, dict | None]:
    """Build a run's parts; returns them, where the run stands and the resumed run's metrics (None if fresh)."""
    train_ds, test_ds = data or _load_data(cfg)
    if train_ds.shape != test_ds.shape:
        raise ConfigError(f"train images are {train_ds.shape} but test images {test_ds.shape}")
    opts = model_options(cfg, len(train_ds.classes), train_ds.shape[0])
    torch.manual_seed(cfg.seed)  # weight init (the same on every rank; DDP broadcasts rank 0's anyway)
    model = build_model(cfg.model, **opts)
    saved = resumable_checkpoint(run_dir, cfg, ctx.is_main) if resume else None
    if saved is not None:
        pre = preprocessor_from_state(saved["preprocess"])
        model.load_state_dict(saved["state_dict"])
    else:
        pre = build_preprocessor(cfg.preprocess).fit(train_ds.images)
    if cfg.whiten_stem:
        _whiten(model, pre, train_ds, fresh=saved is None, fix_norm=cfg.freeze_stem_bn)

    model = model.to(rt.device, memory_format=rt.memory_format)
    optimizer = build_optimizer(model, cfg, rt)
    # drop_last: every step sees a full batch (stable BN statistics, one compiled shape).
    schedule = Schedule(cfg, max(1, len(train_ds) // cfg.batch_size))
    state = ResumeState()
    if saved is not None:
        state = ResumeState.restore(saved["resume"], optimizer, schedule)
        if ctx.is_main:
            log.info("resuming %s at epoch %d step %d", run_dir, state.epoch + 1, state.step_in_epoch)

    step_model = distributed.wrap(model, ctx, rt)
    if rt.compile:
        step_model = torch.compile(step_model)
    test_part = distributed.shard(len(test_ds), ctx)
    parts = Parts(
        cfg=cfg,
        run_dir=run_dir,
        rt=rt,
        ctx=ctx,
        model=model,
        step_model=step_model,
        model_options=opts,
        pre=pre,
        optimizer=optimizer,
        schedule=schedule,
        stall=StallDetector(len(train_ds.classes), cfg.stall_steps),
        classes=train_ds.classes,
        input_shape=train_ds.shape,
        # The whole training set lives on the device as uint8 (4x smaller than float); batches are gathered there.
        images=train_ds.images.to(rt.device),
        labels=train_ds.labels.to(rt.device),
        test_images=test_ds.images[test_part],
        test_labels=test_ds.labels[test_part],
        train_size=len(train_ds),
        test_size=len(test_ds),
    )
    # Only the resumed run's metrics are needed from here on: the checkpoint's tensors are freed.
    return parts, state, None if saved is None else saved.get("metrics", {})
