"""The paper's dropout (p = 0.5) with masks drawn as random bits on the CPU.

``nn.Dropout`` draws one Bernoulli number per element; on the CPU that draw is the slowest part of a NIN
training step after the convolutions (measured on a 2-core Zen 4: ~80 ms for the 6.3 M elements behind
pool1 at batch 128, ~10% of a bf16 step). With p = 0.5 a mask element is one fair bit, so the mask is cut
from random bytes instead, eight elements per byte: the same distribution (independent, keep probability
1/2, kept values scaled by 2 as in Caffe), ~5 ms. Other rates, evaluation and other devices (CUDA fuses its
own draw) run ``nn.Dropout`` itself.
"""

from __future__ import annotations

import torch
import torch.nn as nn

_SHIFTS = torch.arange(8, dtype=torch.uint8)


def keep_mask(x: torch.Tensor) -> torch.Tensor:
    """Independent fair draws laid out like ``x``: 2 (kept, scaled by 1 / (1 - 0.5)) or 0 (dropped), uint8."""
    n = x.numel()
    rand = torch.empty((n + 7) // 8, dtype=torch.uint8, device=x.device).random_()  # 8 fair bits per byte
    bits = rand.unsqueeze(1).bitwise_right_shift(_SHIFTS.to(x.device)).bitwise_and_(1).mul_(2)
    return bits.view(-1)[:n].as_strided(x.shape, x.stride())


class _HalfDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        keep = keep_mask(x)
        ctx.save_for_backward(keep)
        return x * keep

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (keep,) = ctx.saved_tensors
        return grad * keep


def _dense(x: torch.Tensor) -> bool:
    return x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose p = 0.5 training masks on the CPU come from random bits (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.p == 0.5 and x.device.type == "cpu" and not self.inplace and _dense(x):
            return _HalfDropout.apply(x)
        return super().forward(x)
