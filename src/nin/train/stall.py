"""Detect the paper net's known stall (docs/reproduction.md, known trap 1): every class map dead, loss flat at ln K.

The ReLU before GAP plus N(0, 0.05^2) init and lr 0.1 can push every class map below zero; the ReLU then
outputs zeros, all logits are 0, the loss is exactly ln K and no gradient flows. It never recovers.
"""

from __future__ import annotations

import math
from collections import deque


class StallDetector:
    """Watches the first ``after_steps`` steps; returns a message once if the run is stalled."""

    def __init__(self, num_classes: int, after_steps: int, window: int = 50) -> None:
        self.ln_k = math.log(num_classes)
        self.after = after_steps
        self.losses: deque[float] = deque(maxlen=window)
        self.done = after_steps <= 0

    def update(self, step: int, loss: float, max_abs_logit: float | None) -> str | None:
        """``max_abs_logit``: the largest |logit| of the latest batch (None: not measured)."""
        if self.done:
            return None
        self.losses.append(loss)
        if step < self.after:
            return None
        self.done = True
        dead_maps = max_abs_logit == 0.0
        flat = len(self.losses) == self.losses.maxlen and all(abs(v - self.ln_k) < 2e-3 for v in self.losses)
        if dead_maps or flat:
            what = "every class map is zero (all logits 0)" if dead_maps else "the loss is flat"
            return (
                f"training has stalled: after {step} steps {what} and the loss sits at "
                f"ln({round(math.exp(self.ln_k))}) = {self.ln_k:.4f}. This is NIN's known trap (docs/reproduction.md, "
                '"Known traps"): the ReLU before global average pooling with N(0, 0.05^2) init killed every class map.'
            )
        return None
