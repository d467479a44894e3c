"""Decoding user images (any PIL mode) into the uint8 (C, H, W) tensors the models take."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL mode to ``L`` (1 channel) or ``RGB`` (3 channels) the way a viewer would show it.

    Palette and LA/RGBA images are composited on white (transparent pixels would otherwise turn black);
    CMYK goes through PIL's conversion; 16/32-bit integer and float modes are rescaled to 0-255.
    """
    target = "L" if channels == 1 else "RGB"
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("LA", "RGBA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        img = Image.fromarray(a.round().astype(np.uint8), "L")
    return img.convert(target)


def pil_to_tensor(img: Image.Image, channels: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """PIL image -> uint8 tensor (C, H, W), converted to ``channels`` and resized (bilinear) to ``size`` (H, W)."""
    img = to_mode(img, channels)
    if size is not None and (img.height, img.width) != tuple(size):
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(a.transpose(2, 0, 1).copy())
