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


def augment(x: torch.Tensor, translate: int, flip: bool, generator: torch.Generator | None) -> torch.Tensor:
    """Random translation by up to ``translate`` pixels, then (optionally) a random horizontal flip."""
    x = random_translate(x, translate, generator)
    return random_flip(x, generator) if flip else x
