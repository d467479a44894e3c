"""Batched augmentation on uint8 image tensors (N, C, H, W): no per-image Python in the hot loop.

Paper §4 (CIFAR-10 8.81% row): random translations and horizontal flips.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_translate(x: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by an independent random offset in [-pad, pad]^2, filling with zeros.

    Same as zero-padding by ``pad`` and taking a random crop of the original size.
    """
    if pad <= 0:
        return x
    n, _c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device="cpu").to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device="cpu").to(x.device)
    rows = torch.arange(h, device=x.device)[None, :] + dy[:, None]  # (N, H)
    cols = torch.arange(w, device=x.device)[None, :] + dx[:, None]  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator, device="cpu").to(x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square at an independent random centre in each image (cutout; the square
    may overhang the border, so less is cut there)."""
    if size <= 0:
        return x
    n, _c, h, w = x.shape
    cy = torch.randint(0, h, (n,), generator=generator, device="cpu").to(x.device)
    cx = torch.randint(0, w, (n,), generator=generator, device="cpu").to(x.device)
    lo = size // 2
    rows = torch.arange(h, device=x.device)[None, :] - (cy[:, None] - lo)  # (N, H): inside when in [0, size)
    cols = torch.arange(w, device=x.device)[None, :] - (cx[:, None] - lo)
    inside = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :]
    return x.masked_fill(inside[:, None], 0)


def augment(
    x: torch.Tensor, translate: int, flip: bool, generator: torch.Generator | None, cutout: int = 0
) -> torch.Tensor:
    """Random translation by up to ``translate`` pixels, then (optionally) a random horizontal flip, then
    (``cutout`` > 0) a random square of that side zeroed. Without cutout no random numbers are drawn for it,
    so the other draws are those of a run without the option."""
    x = random_translate(x, translate, generator)
    x = random_flip(x, generator) if flip else x
    # Deviation from paper: cutout (DeVries & Taylor 2017) is not in the paper's augmentation.
    return random_cutout(x, cutout, generator) if cutout > 0 else x
