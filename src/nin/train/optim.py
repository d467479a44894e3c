"""The paper's SGD parameter groups and the learning-rate schedules.

Paper recipe (docs/reproduction.md; from cuda-convnet's update rule): weights at lr with weight decay, biases at
2x lr without decay, the last cccp layer at 0.1x; momentum 0.9. BN parameters never decay.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from nin.train.config import TrainConfig
from nin.train.runtime import Runtime


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """SGD parameter groups; each carries ``base_lr`` so schedules scale it."""
    last = model.last_layer()
    last_ids = {id(p) for p in last.parameters()}
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for _name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_last = id(p) in last_ids
        is_bias = p.ndim == 1  # conv/linear biases and BN weights/biases
        groups.setdefault(("bias" if is_bias else "weight", is_last), []).append(p)
    out = []
    for (kind, is_last), params in sorted(groups.items()):
        lr = cfg.lr * (cfg.bias_lr_mult if kind == "bias" else 1.0) * (cfg.last_lr_mult if is_last else 1.0)
        wd = cfg.weight_decay if kind == "weight" else 0.0
        out.append(
            {
                "params": params,
                "lr": lr,
                "base_lr": lr,
                "weight_decay": wd,
                "name": ("last_" if is_last else "") + {"weight": "weights", "bias": "biases"}[kind],
            }
        )
    return out


def build_optimizer(model: nn.Module, cfg: TrainConfig, rt: Runtime) -> torch.optim.Optimizer:
    """SGD over :func:`param_groups`, with the multi-tensor implementation the runtime picks."""
    return torch.optim.SGD(
        param_groups(model, cfg),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        **rt.optimizer_options(),
    )


class Schedule:
    """Learning-rate factor as a function of progress, plus plateau state (epoch-level drops).

    ``factor(step)`` is pure for constant/step/cosine/onecycle, so resuming needs no state; ``plateau``
    keeps (best, bad epochs, drops) in :meth:`state_dict`.
    """

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int) -> None:
        self.cfg = cfg
        self.spe = max(1, steps_per_epoch)
        self.total = cfg.epochs * self.spe
        if cfg.max_steps:
            self.total = min(self.total, cfg.max_steps)
        self.plateau_scale = 1.0
        self.best = math.inf
        self.bad_epochs = 0
        self.drops = 0

    def retarget(self, total: int) -> None:
        """End the schedule at ``total`` steps instead, never past ``cfg.epochs`` epochs (a time budget's
        correction while training). A one-cycle lr then anneals to zero at the new end; the next lr changes
        by the ratio of the steps left, so a small correction does not jolt training."""
        self.total = max(1, min(int(total), self.cfg.epochs * self.spe))

    @property
    def epochs(self) -> int:
        """The epochs the schedule ends in: ``cfg.epochs``, or fewer where a step total ends it sooner."""
        return math.ceil(self.total / self.spe)

    def factor(self, step: int) -> float:
        cfg = self.cfg
        warm = cfg.warmup_epochs * self.spe
        if cfg.schedule == "onecycle":
            # Linear up over the first 25% (or the warm-up) from 1/25 of the peak, then linear down to 0.
            up = warm if warm > 0 else 0.25 * self.total
            if step < up:
                return 0.04 + 0.96 * step / up
            return max(0.0, (self.total - step) / max(1.0, self.total - up))
        if warm > 0 and step < warm:
            return (step + 1) / warm
        if cfg.schedule == "cosine":
            t = (step - warm) / max(1.0, self.total - warm)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        if cfg.schedule == "step":
            epoch = step // self.spe
            return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
        if cfg.schedule == "plateau":
            return self.plateau_scale
        return 1.0

    def epoch_end(self, train_error: float) -> bool:
        """Plateau bookkeeping after an epoch; returns True when the lr was dropped."""
        if self.cfg.schedule != "plateau":
            return False
        if train_error < self.best - 1e-4:
            self.best, self.bad_epochs = train_error, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs >= self.cfg.plateau_patience and self.drops < self.cfg.plateau_drops:
            self.plateau_scale *= self.cfg.gamma
            self.drops += 1
            self.bad_epochs = 0
            return True
        return False

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        f = self.factor(step)
        for g in optimizer.param_groups:
            g["lr"] = g["base_lr"] * f
        return self.cfg.lr * f

    def state_dict(self) -> dict:
        return {
            "plateau_scale": self.plateau_scale,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "drops": self.drops,
        }

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.drops = int(state["drops"])
