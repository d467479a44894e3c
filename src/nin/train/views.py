"""Test-time augmentation: the mean logits of several views of each image (mirror and small shifts).

Not in the paper (its scores are single-view). The time-to-accuracy bench (``nin bench --tta``) scores its
final model this way; the views are taken of the raw uint8 images, before preprocessing, with the zero fill
the training shifts use (:func:`nin.data.augment.random_translate`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from nin.data.preprocess import Preprocessor
from nin.models.inference import inference_model
from nin.train.runtime import Runtime


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` (N, C, H, W) moved down by ``dy`` and right by ``dx`` pixels (negative: up/left), zero-filled."""
    if dy == 0 and dx == 0:
        return x
    h, w = x.shape[-2:]
    p = max(abs(dy), abs(dx))
    padded = F.pad(x, (p, p, p, p))
    return padded[..., p - dy : p - dy + h, p - dx : p - dx + w]


def views(flips: bool, shift_px: int) -> list[tuple[bool, int, int]]:
    """The (mirrored, dy, dx) views scored: the image, its mirror if ``flips``, and for ``shift_px`` > 0 each
    of those moved diagonally by ``shift_px`` both ways (up-left, down-right), as in CIFAR speedruns."""
    offsets = [(0, 0)] + ([(-shift_px, -shift_px), (shift_px, shift_px)] if shift_px > 0 else [])
    mirrors = (False, True) if flips else (False,)
    return [(m, dy, dx) for m in mirrors for dy, dx in offsets]


@torch.inference_mode()
def view_logits(
    model: nn.Module,
    images: torch.Tensor,
    pre: Preprocessor,
    rt: Runtime,
    flips: bool = True,
    shift_px: int = 1,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Float32 logits (N, K) on the CPU: the mean over :func:`views` of each uint8 image (N, C, H, W)."""
    was_training = model.training
    fast = inference_model(model.eval(), rt.amp_dtype, rt.memory_format)
    batch_size = batch_size or rt.eval_batch
    chosen = views(flips, shift_px)
    out = []
    for i in range(0, images.shape[0], batch_size):
        batch = images[i : i + batch_size].to(rt.device, non_blocking=True)
        total = None
        for mirrored, dy, dx in chosen:
            v = shift(batch.flip(3) if mirrored else batch, dy, dx)
            x = pre.apply(v).contiguous(memory_format=rt.memory_format)
            with rt.autocast():
                logits = fast(x).float()
            total = logits if total is None else total + logits
        out.append((total / len(chosen)).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def view_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    pre: Preprocessor,
    rt: Runtime,
    flips: bool = True,
    shift_px: int = 1,
) -> float:
    """Accuracy (0-1) of :func:`view_logits` against ``labels``."""
    logits = view_logits(model, images, pre, rt, flips, shift_px)
    n = labels.numel()
    return int((logits.argmax(1) == labels.cpu()).sum()) / n if n else float("nan")  # exact, as evaluate's
