"""Class activation maps (Zhou et al. 2016) from NIN's class maps: upsample, overlay, localise.

NIN's last mlpconv emits one confidence map per class and GAP averages it into the logit (paper §3.2,
Fig. 4), so the map of class c *is* the CAM of class c with identity weights. Everything
here works on plain arrays: numpy / torch in, an RGB uint8 array out. Only the colormap comes from
matplotlib (``matplotlib.colormaps``, which needs no backend and no pyplot).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
import torch.nn.functional as F

from nin.viz._mpl import colormap

# CAM paper §4: "segment the regions of which the value is above 20% of the max value of the CAM".
BOX_THRESHOLD = 0.2


def _as_map(cam: np.ndarray | torch.Tensor) -> np.ndarray:
    a = cam.detach().float().cpu().numpy() if isinstance(cam, torch.Tensor) else np.asarray(cam, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"a class map must be 2-D (h, w), got shape {a.shape}")
    return a.astype(np.float32, copy=False)


def as_rgb(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """Any image array -> RGB uint8 (H, W, 3).

    Accepts (C, H, W) tensors/arrays with C in {1, 3} (the dataset layout), (H, W, C), or (H, W) grey.
    Float images are taken as 0-1 when their maximum is <= 1, else as 0-255.
    """
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an image (H, W), (H, W, C) or (C, H, W), got shape {a.shape}")
    a = a[..., :3]
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.ascontiguousarray(a)


def upsample_map(cam: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of class maps to ``size`` = (H, W), as the CAM paper does: float32 (..., H, W).

    Takes one map (h, w) or any stack of them, e.g. a batch (N, K, h, w) from ``forward_features``.
    """
    t = cam.detach().float().cpu() if isinstance(cam, torch.Tensor) else torch.from_numpy(np.array(cam, np.float32))
    if t.ndim < 2:
        raise ValueError(f"class maps must be (..., h, w), got shape {tuple(t.shape)}")
    size = tuple(int(s) for s in size)
    # align_corners=False: each map cell covers its share of the input (the pooling geometry).
    up = F.interpolate(t.reshape(1, -1, *t.shape[-2:]), size=size, mode="bilinear", align_corners=False)
    return up.reshape(*t.shape[:-2], *size).numpy()


def normalize_map(cam: np.ndarray | torch.Tensor) -> np.ndarray:
    """Min-max scale a map to [0, 1]; a constant map (e.g. a dead class) becomes all zeros."""
    a = _as_map(cam)
    lo, hi = float(a.min()), float(a.max())
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo <= 1e-12:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


def colorize(cam: np.ndarray | torch.Tensor, cmap: str = "jet") -> np.ndarray:
    """A map scaled to [0, 1] -> RGB uint8 (h, w, 3) through a matplotlib colormap."""
    a = np.clip(_as_map(cam), 0.0, 1.0)
    rgba = colormap(cmap)(a)  # (h, w, 4) floats in 0-1
    return np.rint(rgba[..., :3] * 255).astype(np.uint8)


def cam_overlay(
    image: np.ndarray | torch.Tensor,
    cam: np.ndarray | torch.Tensor,
    alpha: float = 0.5,
    cmap: str = "jet",
    box: bool = False,
    threshold: float = BOX_THRESHOLD,
    box_color: tuple[int, int, int] = (0, 255, 0),
) -> np.ndarray:
    """Blend one class map over an image: the CAM picture of Zhou et al. 2016.

    Args:
        image: the input image, any layout :func:`as_rgb` takes; its (H, W) is the output's size.
        cam: the class map (h, w) of the class to show, e.g. ``forward_features(x)[0, c]``.
        alpha: weight of the heat map (0 = the image alone, 1 = the heat map alone).
        cmap: a matplotlib colormap name.
        box: also draw the box of :func:`cam_box` (largest region above ``threshold`` of the maximum).
        threshold: the box threshold as a fraction of the map's range (CAM paper: 0.2).
        box_color: RGB of the box outline (green, as in the CAM paper; visible on the jet colours and on white).

    Returns:
        RGB uint8 array (H, W, 3) of the image's size.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = as_rgb(image)
    h, w = rgb.shape[:2]
    heat = normalize_map(upsample_map(cam, (h, w)))
    out = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colorize(heat, cmap).astype(np.float32)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if box:
        b = cam_box(heat, threshold)
        if b is not None:
            out = draw_box(out, b, box_color)
    return out


def cam_box(cam: np.ndarray | torch.Tensor, threshold: float = BOX_THRESHOLD) -> tuple[int, int, int, int] | None:
    """Bounding box of the largest connected region where the map exceeds ``threshold`` of its range.

    As in the CAM paper's localisation (§4): normalise the map, keep values >= ``threshold``, take the
    largest 4-connected component and return its box. Pass the map already upsampled to the image
    size to get the box in image pixels.

    Returns:
        ``(left, top, right, bottom)``, inclusive pixel indices, or ``None`` for a constant (dead) map.
    """
    a = _as_map(cam)
    if float(a.max()) - float(a.min()) <= 1e-12:
        return None
    mask = normalize_map(a) >= threshold
    labels, count = label_components(mask)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0  # background
    ys, xs = np.nonzero(labels == int(sizes.argmax()))
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of a boolean mask: (labels int32 with 0 = background, count).

    Uses ``scipy.ndimage.label`` where scipy is installed (the ``data`` extra); otherwise a flood fill,
    which is plenty fast for class maps upsampled to an input image.
    """
    mask = np.asarray(mask, dtype=bool)
    try:
        from scipy import ndimage
    except ImportError:
        return _flood_fill_components(mask)
    labels, count = ndimage.label(mask)  # default structure: 4-connectivity
    return labels.astype(np.int32), int(count)


def _flood_fill_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    h, w = mask.shape
    labels = np.zeros((h, w), dtype=np.int32)
    count = 0
    for y0, x0 in zip(*np.nonzero(mask)):
        if labels[y0, x0]:
            continue
        count += 1
        labels[y0, x0] = count
        queue = deque([(y0, x0)])
        while queue:
            y, x = queue.popleft()
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = count
                    queue.append((ny, nx))
    return labels, count


def draw_box(
    rgb: np.ndarray, box: tuple[int, int, int, int], color: tuple[int, int, int] = (0, 255, 0), width: int = 0
) -> np.ndarray:
    """A copy of ``rgb`` (H, W, 3) with the outline of ``box`` (inclusive pixels) drawn on it.

    ``width`` 0 picks about 1.5% of the image side, at least one pixel.
    """
    from PIL import Image, ImageDraw

    img = Image.fromarray(as_rgb(rgb))
    width = width or max(1, round(min(img.size) / 64))
    ImageDraw.Draw(img).rectangle(box, outline=tuple(color), width=width)
    return np.asarray(img).copy()


def upscale_image(image: np.ndarray | torch.Tensor, min_side: int = 0) -> np.ndarray:
    """RGB uint8 (H, W, 3), enlarged by an integer factor (nearest) until its shorter side is >= ``min_side``.

    Small inputs (28 x 28 digits) get a smooth heat map this way while their pixels stay crisp.
    """
    rgb = as_rgb(image)
    short = min(rgb.shape[:2])
    factor = max(1, -(-min_side // short)) if short else 1
    if factor == 1:
        return rgb
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)
