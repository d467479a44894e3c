"""An exponential moving average of a model's weights (Polyak averaging), updated after optimiser steps.

Not in the paper. The time-to-accuracy bench can score the average instead of the last weights; BN running
statistics are copied, not averaged (they already are running averages).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class WeightEMA:
    """``avg = decay * avg + (1 - decay) * weights`` every ``every`` steps, with a warm-up on the decay.

    Args:
        model: the trained model; the average starts as a copy of it.
        decay: the decay per update at full strength (e.g. 0.99).
        every: steps between updates; the average spans about ``every / (1 - decay)`` steps.
        warmup: the effective decay is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early
            weights, far from the final ones, do not linger in the average.
    """

    def __init__(self, model: nn.Module, decay: float, every: int = 1, warmup: bool = True) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay, self.every, self.warmup = decay, max(1, every), warmup
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        """The decay the next update uses."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def step(self, model: nn.Module, step: int) -> bool:
        """Fold ``model``'s weights in if ``step`` (1-based) is an update step; returns whether it did."""
        if step % self.every:
            return False
        d = self.current_decay()
        avg = [p for p in self.model.parameters()]
        new = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(avg, new, 1.0 - d)
        for b_avg, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_avg.copy_(b)
        self.updates += 1
        return True
