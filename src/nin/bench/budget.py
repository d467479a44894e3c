"""Size a one-cycle schedule to a wall-clock budget: time a few real steps, then plan epochs and steps.

A one-cycle schedule only pays off when it runs to its end (the lr anneals to zero in the last steps), so a
time-to-accuracy run cut off by its budget wastes the budget. :func:`plan_schedule` picks the longest
schedule whose steps *and* per-epoch evaluations fit the seconds left; :func:`time_steps` measures what a
training step and an evaluation cost on this machine today, in the real training loop.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from nin.data.dataset import Dataset
from nin.errors import ConfigError
from nin.train.config import TrainConfig
from nin.train.resize import low_res_steps


@dataclass(frozen=True)
class StepCost:
    step_s: float  # one optimiser step of a full batch
    eval_s: float  # one evaluation of the test set
    low_step_s: float = 0.0  # a step of the progressive-resizing steps (0: as step_s)

    def seconds(self, done: int, total: int, low_share: float = 0.0) -> float:
        """The time of steps ``done``..``total`` of a schedule whose first ``low_share`` of steps train at low res."""
        low = max(0, low_res_steps(low_share, total) - done) if low_share else 0
        return low * (self.low_step_s or self.step_s) + (total - done - low) * self.step_s


@dataclass(frozen=True)
class Plan:
    epochs: int
    steps: int  # total optimiser steps; the last epoch may be partial


def plan_schedule(
    cost: StepCost,
    steps_per_epoch: int,
    seconds: float,
    max_epochs: int,
    extra_evals: int = 0,
    done_steps: int = 0,
    low_share: float = 0.0,
) -> Plan:
    """The most steps that fit ``seconds`` with one evaluation per (started) epoch plus ``extra_evals``.

    ``done_steps`` > 0 re-plans a run under way (at an epoch's end): ``seconds`` are the seconds left, and
    the plan counts the steps already taken but only the time of the steps and evaluations still to come.
    ``low_share``: the first share of the planned steps cost ``cost.low_step_s`` (progressive resizing).
    """
    if steps_per_epoch < 1 or max_epochs < 1:
        raise ConfigError("steps_per_epoch and max_epochs must be >= 1")
    done_epochs = done_steps // steps_per_epoch
    best = Plan(0, 0)
    for epochs in range(done_epochs + 1, max_epochs + 1):
        left = seconds - (epochs - done_epochs + extra_evals) * cost.eval_s
        steps = _most_steps(cost, done_steps, epochs * steps_per_epoch, left, low_share) if left > 0 else 0
        if steps > (epochs - 1) * steps_per_epoch:  # this many epochs is really reached
            best = Plan(epochs, steps)
    if done_steps:
        return best if best.steps else Plan(done_epochs, done_steps)  # no time for another step
    if best.steps < 1:
        raise ConfigError(
            f"the budget ({seconds:.0f} s) does not fit one training step ({cost.step_s:.2f} s) and an "
            f"evaluation ({cost.eval_s:.1f} s) on this machine; give a larger budget or a fixed --epochs"
        )
    return best


def _most_steps(cost: StepCost, done: int, cap: int, left: float, low_share: float) -> int:
    """The largest total in [done, cap] whose steps still to come fit ``left`` seconds (0 when none does)."""
    if not low_share:
        return min(cap, done + math.floor(left / cost.step_s))
    lo, hi = done, cap  # seconds() grows with the total: bisect for the last one that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost.seconds(done, mid, low_share) <= left else (lo, mid - 1)
    return lo


def choose_model(
    costs: Sequence[tuple[str, StepCost]],
    steps_per_epoch: int,
    seconds: float,
    max_epochs: int,
    min_epochs: float,
    extra_evals: int = 0,
    low_share: float = 0.0,
) -> tuple[str, Plan]:
    """The widest model that still trains ``min_epochs`` epochs in ``seconds``, and its plan.

    ``costs`` lists the candidates from the narrowest to the widest with their measured costs. In a short
    budget a wider net that sees each image only a few times loses to a narrower one that sees it more
    often, so width is bought only with time left over after ``min_epochs``; when no candidate gets that far
    the narrowest one runs what fits.
    """
    if not costs:
        raise ConfigError("no candidate model to plan for")
    first = costs[0][1]
    name, plan = costs[0][0], plan_schedule(first, steps_per_epoch, seconds, max_epochs, extra_evals, 0, low_share)
    for cand, cost in costs[1:]:
        try:
            p = plan_schedule(cost, steps_per_epoch, seconds, max_epochs, extra_evals, 0, low_share)
        except ConfigError:
            break
        if p.steps < min_epochs * steps_per_epoch:
            break
        name, plan = cand, p
    return name, plan


def time_steps(cfg: TrainConfig, data: tuple[Dataset, Dataset], steps: int = 30, warmup: int = 8) -> StepCost:
    """Step and evaluation time of ``cfg`` on ``data``, measured in the real training loop.

    Runs ``steps`` optimiser steps (the first ``warmup`` not timed: allocator, kernel choice and caches settle
    over several steps on a CPU) and one evaluation of the test set, with every cost of a real step included
    (batch gathering, augmentation, preprocessing, metric read-backs).
    """
    from nin.train.engine import train

    steps = min(steps, max(1, len(data[0]) // cfg.batch_size))  # within one epoch
    warmup = min(warmup, steps - 2)
    if warmup < 0:
        raise ConfigError("timing a step needs at least 2 batches of training data")
    stamps: list[float] = []
    evaluated: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        train(
            cfg.replace(epochs=1, max_steps=steps, checkpoint_every=0, stall_steps=0),
            out_dir=tmp,
            progress=False,
            data=data,
            on_step=lambda _s: stamps.append(time.perf_counter()),
            on_epoch=lambda _row: evaluated.append(time.perf_counter()),
        )
    gaps = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :])]
    return StepCost(step_s=statistics.median(gaps), eval_s=evaluated[0] - stamps[-1])


class _ProbeDone(Exception):
    pass


def probe_step_s(cfg: TrainConfig, data: tuple[Dataset, Dataset], steps: int = 6, warmup: int = 2) -> float:
    """A quick, rough step time of ``cfg``: ``steps`` real steps, the first ``warmup`` not timed, no evaluation.

    Cheaper than :func:`time_steps` (no evaluation, few steps) and biased high (caches still settling): good
    enough to rule out a candidate that is several times too slow before the full timing is paid for.
    """
    from nin.train.engine import train

    steps = min(steps, len(data[0]) // cfg.batch_size)  # within one epoch, before its evaluation
    warmup = min(warmup, steps - 3)
    if warmup < 0:
        raise ConfigError("probing a step needs at least 3 batches of training data")
    stamps: list[float] = []

    def on_step(_step: int) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) == steps:
            raise _ProbeDone  # stop before the epoch's evaluation

    with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(_ProbeDone):
        train(
            cfg.replace(epochs=1, max_steps=steps + 1, checkpoint_every=0, stall_steps=0),
            out_dir=tmp,
            progress=False,
            data=data,
            on_step=on_step,
        )
    gaps = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :])]
    return statistics.median(gaps)
