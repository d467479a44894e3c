"""Where a run stands, as a resumable checkpoint's ``resume`` entry records it, and finding that checkpoint.

Every step's randomness comes from (seed, epoch, step), so this position, the optimiser and schedule states
and the weights are all a resumed run needs to take exactly the steps of an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nin.errors import ConfigError
from nin.train.checkpoint import load_resumable
from nin.train.config import TrainConfig
from nin.train.optim import Schedule

log = logging.getLogger(__name__)


def _fresh_sums() -> dict:
    """The running sums of an epoch's training batches, before its first step."""
    return {"loss": 0.0, "correct": 0, "seen": 0}


@dataclass
class ResumeState:
    """The position of a run between two optimiser steps.

    Attributes:
        epoch: the epoch in progress (0-based).
        step_in_epoch: the next step of that epoch (0 at its start).
        global_step: optimiser steps taken over the whole run.
        best: the lowest test error so far (%).
        sums: the epoch's running training sums ``{"loss", "correct", "seen"}`` (so a resumed epoch
            reports the loss and error of all its batches).
    """

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best: float = math.inf
    sums: dict = field(default_factory=_fresh_sums)

    def next_epoch(self) -> None:
        """Move to the start of the next epoch (the current one is complete)."""
        self.epoch, self.step_in_epoch, self.sums = self.epoch + 1, 0, _fresh_sums()

    def to_dict(self, optimizer: torch.optim.Optimizer, schedule: Schedule) -> dict:
        """The checkpoint's ``resume`` entry."""
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "best": self.best,
            "epoch_acc": dict(self.sums),
        }

    @classmethod
    def restore(cls, entry: dict, optimizer: torch.optim.Optimizer, schedule: Schedule) -> ResumeState:
        """Load a ``resume`` entry into ``optimizer`` and ``schedule``; returns the position it records."""
        optimizer.load_state_dict(entry["optimizer"])
        schedule.load_state_dict(entry["schedule"])
        epoch, step = int(entry["epoch"]), int(entry["step_in_epoch"])
        return cls(epoch, step, epoch * schedule.spe + step, float(entry["best"]), dict(entry["epoch_acc"]))


def resumable_checkpoint(run_dir: Path, cfg: TrainConfig, main: bool) -> dict | None:
    """The checkpoint to resume ``run_dir`` from, or None (a warning) when it has none.

    Raises:
        ConfigError: the checkpoint was trained with another config (only ``epochs`` and ``max_steps``
            may change between a run and its resume).
    """
    ckpt = load_resumable(run_dir)
    if ckpt is None:
        if main:
            log.warning("no resumable checkpoint in %s; starting from scratch", run_dir)
        return None
    saved = TrainConfig.from_dict(ckpt["train"])
    if saved.replace(epochs=cfg.epochs, max_steps=cfg.max_steps) != cfg:
        raise ConfigError(
            f"{run_dir}/last.pt was trained with a different config; resume with the same "
            "config (only epochs and max_steps may change) or use a new --out folder"
        )
    return ckpt
