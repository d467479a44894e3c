"""Size a one-cycle schedule to a wall-clock budget: time a few real steps, then plan epochs and steps.

A one-cycle schedule only pays off when it runs to its end (the lr anneals to zero in the last steps), so a
time-to-accuracy run cut off by its budget wastes the budget. :func:`plan_schedule` picks the longest
schedule whose steps *and* per-epoch evaluations fit the seconds left; :func:`time_steps` measures what a
training step and an evaluation cost on this machine today.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nin.errors import ConfigError
from nin.train.config import TrainConfig


@dataclass(frozen=True)
class StepCost:
    step_s: float  # one optimiser step of a full batch
    eval_s: float  # one evaluation of the test set


@dataclass(frozen=True)
class Plan:
    epochs: int
    steps: int  # total optimiser steps; the last epoch may be partial


def plan_schedule(cost: StepCost, steps_per_epoch: int, seconds: float, max_epochs: int, extra_evals: int = 0) -> Plan:
    """The most steps that fit ``seconds`` with one evaluation per (started) epoch plus ``extra_evals``."""
    if steps_per_epoch < 1 or max_epochs < 1:
        raise ConfigError("steps_per_epoch and max_epochs must be >= 1")
    best = Plan(0, 0)
    for epochs in range(1, max_epochs + 1):
        left = seconds - (epochs + extra_evals) * cost.eval_s
        steps = min(epochs * steps_per_epoch, math.floor(left / cost.step_s)) if left > 0 else 0
        if steps > (epochs - 1) * steps_per_epoch:  # this many epochs is really reached
            best = Plan(epochs, steps)
    if best.steps < 1:
        raise ConfigError(
            f"the budget ({seconds:.0f} s) does not fit one training step ({cost.step_s:.2f} s) and an "
            f"evaluation ({cost.eval_s:.1f} s) on this machine; give a larger budget or a fixed --epochs"
        )
    return best


def time_steps(cfg: TrainConfig, shape: tuple[int, int, int], num_classes: int, n_test: int, reps: int = 6) -> StepCost:
    """Median time of a training step (forward, loss, backward, SGD) and of a test-set evaluation."""
    from nin.models import build_model
    from nin.train.engine import model_options
    from nin.train.optim import build_optimizer
    from nin.train.runtime import select_runtime

    rt = select_runtime(cfg.device, cfg.precision, cfg.channels_last, cfg.compile)
    rt.setup()
    model = build_model(cfg.model, **model_options(cfg, num_classes, shape[0]))
    model = model.to(rt.device, memory_format=rt.memory_format)
    optimizer = build_optimizer(model, cfg, rt)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(cfg.batch_size, *shape, generator=gen).to(rt.device, memory_format=rt.memory_format)
    y = torch.randint(0, num_classes, (cfg.batch_size,), generator=gen).to(rt.device)

    def sync() -> None:
        if rt.device.type == "cuda":
            torch.cuda.synchronize()

    def step() -> None:
        with rt.autocast():
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # the training loop reads the loss back as well

    model.train()
    times = []
    for i in range(reps + 2):  # two warm-up steps (allocator, kernel choice)
        t = time.perf_counter()
        step()
        sync()
        if i >= 2:
            times.append(time.perf_counter() - t)
    model.eval()
    xe = x[: min(256, cfg.batch_size)]
    with torch.no_grad(), rt.autocast():
        model(xe)
        sync()
        t = time.perf_counter()
        for _ in range(2):
            model(xe)
        sync()
    per_image = (time.perf_counter() - t) / (2 * xe.shape[0])
    return StepCost(step_s=statistics.median(times), eval_s=per_image * n_test)
