"""Class-map overlays: what the model saw, with one class's confidence map (paper Fig. 4) laid over it."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

# nin.viz.cam loads matplotlib only to colour a map (colorize); these two are plain numpy / torch.
from nin.viz.cam import normalize_map, upsample_map

# A perceptually ordered colour ramp (dark blue -> purple -> orange -> yellow), sampled at 5 anchors.
_ANCHORS = np.array(
    [[13, 8, 135], [126, 3, 168], [204, 71, 120], [248, 149, 64], [240, 249, 33]],
    dtype=np.float64,
)


def colormap(v: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (H, W) -> uint8 RGB (H, W, 3)."""
    x = np.clip(v, 0.0, 1.0) * (len(_ANCHORS) - 1)
    lo = np.floor(x).astype(int).clip(0, len(_ANCHORS) - 2)
    t = (x - lo)[..., None]
    rgb = _ANCHORS[lo] * (1 - t) + _ANCHORS[lo + 1] * t
    return rgb.round().astype(np.uint8)


def display_size(h: int, w: int, target: int = 256) -> tuple[int, int]:
    """Scale small inputs up by a whole factor (sharp pixels) so the longer side reaches ~``target``."""
    factor = max(1, target // max(h, w))
    return h * factor, w * factor


def overlay_image(pixels: torch.Tensor, class_map: torch.Tensor, alpha: float = 0.55) -> Image.Image:
    """Blend one class map over the prepared input.

    Args:
        pixels: uint8 (C, H, W), the image as the model saw it (after ``prepare_image``).
        class_map: (h, w) raw map of one class, before upsampling.
        alpha: opacity of the heat map where it is hottest (it fades out where the map is cold).
    """
    c, h, w = pixels.shape
    dh, dw = display_size(h, w)
    img = Image.fromarray(pixels.permute(1, 2, 0).numpy().squeeze(-1) if c == 1 else pixels.permute(1, 2, 0).numpy())
    img = img.convert("RGB").resize((dw, dh), Image.NEAREST)
    heat = normalize_map(upsample_map(class_map, (dh, dw)))  # (dh, dw) in [0, 1]
    a = (alpha * (0.25 + 0.75 * heat))[..., None]
    out = np.asarray(img, dtype=np.float64) * (1 - a) + colormap(heat).astype(np.float64) * a
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8))


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
