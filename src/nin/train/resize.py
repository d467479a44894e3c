"""Progressive resizing (not in the paper): the first share of a schedule's steps trains on smaller images.

A step on 20x20 images costs well under half of one on 28x28 (block 1's BN and ReLU dominate a NIN-MNIST
step), so a time budget buys more epochs; the last steps, and every evaluation, see full-size images, so the
model is scored at the size it ends training on. The share is of the schedule's total steps, which follows a
schedule re-sized mid-run (``nin bench --tta``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def low_res_steps(share: float, total_steps: int) -> int:
    """How many of the schedule's first steps train at the low resolution."""
    return int(share * total_steps)


def low_res(x: torch.Tensor, side: int) -> torch.Tensor:
    """The preprocessed batch ``x`` resized to ``side`` x ``side`` px (bilinear; antialiased when shrinking)."""
    if x.shape[-2:] == (side, side):
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
