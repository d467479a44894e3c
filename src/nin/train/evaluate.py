"""Evaluation over an in-memory dataset: loss, error, accuracy, and optionally the predictions."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from nin.data.preprocess import Preprocessor
from nin.models.inference import inference_model
from nin.train.runtime import Runtime


def _logits(model: nn.Module, batch: torch.Tensor, pre: Preprocessor, rt: Runtime) -> torch.Tensor:
    x = pre.apply(batch).contiguous(memory_format=rt.memory_format)
    with rt.autocast():
        return model(x).float()


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    pre: Preprocessor,
    rt: Runtime,
    batch_size: int | None = None,
    flips: bool = False,
) -> torch.Tensor:
    """Logits (N, K) in float32 on the CPU for uint8 images (N, C, H, W).

    Args:
        batch_size: images per forward pass (default: the runtime's ``eval_batch``).
        flips: return the mean logits of each image and its left-right mirror (test-time flips); the
            mirror is taken of the raw image, before ``pre`` (a fitted ZCA matrix need not commute with it).
    """
    model = inference_model(model.eval(), rt.amp_dtype, rt.memory_format)  # BN folded, ReLU fused, cast once
    batch_size = batch_size or rt.eval_batch
    out = []
    for i in range(0, images.shape[0], batch_size):
        batch = images[i : i + batch_size].to(rt.device, non_blocking=True)
        logits = _logits(model, batch, pre, rt)
        if flips:
            logits = (logits + _logits(model, batch.flip(3), pre, rt)) / 2
        out.append(logits.cpu())
    return torch.cat(out) if out else torch.zeros(0)


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    pre: Preprocessor,
    rt: Runtime,
    batch_size: int | None = None,
    flips: bool = False,
) -> dict:
    """``{"loss", "accuracy" (0-1), "error_pct", "n"}`` over the whole set, in eval mode.

    Args:
        flips: score the mean logits of each image and its mirror (see :func:`predict_logits`).
    """
    was_training = model.training
    logits = predict_logits(model, images, pre, rt, batch_size, flips)
    model.train(was_training)
    labels = labels.cpu()
    n = int(labels.numel())
    if n == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "error_pct": float("nan"), "n": 0}
    loss = F.cross_entropy(logits, labels).item()
    acc = int((logits.argmax(1) == labels).sum()) / n  # exact: 1,986 of 2,000 is 0.993, not float32's 0.99299997
    return {"loss": loss, "accuracy": acc, "error_pct": 100.0 * (1.0 - acc), "n": n}


def confusion_matrix(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) counts: row = true class, column = predicted class."""
    pred = logits.argmax(1)
    idx = labels.cpu() * num_classes + pred.cpu()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
