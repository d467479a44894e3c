"""A whitened first convolution: its filters set from the patch statistics of the training images, then frozen.

Not in the paper (the fastest CIFAR-10 speedruns start this way): the first layer's k x k filters become the
top eigenvectors of the covariance of k x k patches of the preprocessed training images, each scaled by
1/sqrt(eigenvalue) and paired with its negative (a ReLU then keeps both signs), and they are not trained.
Filters beyond two per patch dimension keep their initial values (frozen with the rest of the weight).
:func:`fix_stem_norm` can also fix the batch norm that follows the stem at the identity: the whitened responses
already have unit variance, and with nothing below it trainable, a step then computes no gradient below the
stem's ReLU (no batch-norm backward on the largest activations, no input gradient of the next convolution).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def patch_whitening(x: torch.Tensor, kernel: tuple[int, int], eps: float = 5e-4, max_patches: int = 200_000):
    """Eigenvalues (descending) and eigenvectors (columns) of the covariance of ``kernel`` patches of ``x``.

    Args:
        x: float images (N, C, H, W), preprocessed as the network sees them.
        kernel: the patch size (kh, kw).
        eps: added to each eigenvalue before the square root (flattens the noise directions).
        max_patches: patches sampled, evenly spaced, for the covariance.
    """
    n, c, h, w = x.shape
    dims, per_image = c * kernel[0] * kernel[1], (h - kernel[0] + 1) * (w - kernel[1] + 1)
    step = max(1, n * per_image // max_patches)
    # Every step-th patch in (image, position) order, unfolded a chunk of images at a time: the patches of all
    # the images at once would be dims x the images' size (25x for 5x5 patches).
    chunk = max(1, 2 * max_patches // per_image)
    picked = []
    for start in range(0, n, chunk):
        patches = F.unfold(x[start : start + chunk].float(), kernel).transpose(1, 2).reshape(-1, dims)
        first = -(start * per_image) % step  # the first index of this chunk that is a multiple of step
        picked.append(patches[first::step].double())
    p = torch.cat(picked)
    p = p - p.mean(0)
    cov = p.T @ p / p.shape[0]
    values, vectors = torch.linalg.eigh(cov)
    return values.flip(0).clamp_min(0) + eps, vectors.flip(1)


@torch.no_grad()
def whiten_stem(conv: nn.Conv2d, images: torch.Tensor, freeze: bool = True, eps: float = 5e-4) -> int:
    """Set ``conv``'s first filters to whitening filters of ``images`` (preprocessed floats); returns how many.

    Filter 2i is eigenvector i / sqrt(eigenvalue i), filter 2i + 1 its negative, for the largest eigenvalues,
    as many pairs as the layer has room for and the patch has dimensions. ``freeze`` stops the weight from
    training (the whole weight: the remaining filters, if any, stay at their initial values).
    """
    if conv.groups != 1:
        raise ValueError("whiten_stem needs an ungrouped convolution")
    values, vectors = patch_whitening(images, conv.kernel_size, eps)
    pairs = min(conv.out_channels // 2, vectors.shape[1])
    filters = (vectors[:, :pairs] / values[:pairs].sqrt()).T  # (pairs, C*kh*kw)
    w = torch.stack((filters, -filters), 1).reshape(2 * pairs, *conv.weight.shape[1:])
    conv.weight[: 2 * pairs] = w.to(conv.weight.dtype)
    if freeze:
        conv.weight.requires_grad_(False)
    return 2 * pairs


def _first_conv_index(named: list[tuple[str, nn.Module]]) -> int | None:
    return next((i for i, (_, m) in enumerate(named) if isinstance(m, nn.Conv2d)), None)


def first_conv(model: nn.Module) -> nn.Conv2d | None:
    """``model``'s first convolution in registration order (the stem), or None."""
    named = list(model.named_modules())
    i = _first_conv_index(named)
    return None if i is None else named[i][1]


class IdentityNorm(nn.BatchNorm2d):
    """A batch norm fixed at the identity: weight 1, bias 0, running mean 0 and variance 1 - eps (so that the
    eval-mode formula of a plain :class:`~torch.nn.BatchNorm2d` loaded from its state is the identity too),
    none of it trained, and the batch passed through unchanged in training and evaluation alike."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__(num_features, eps=eps)
        with torch.no_grad():
            self.weight.fill_(1.0)
            self.bias.zero_()
            self.running_mean.zero_()
            self.running_var.fill_(1.0 - eps)
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def fix_stem_norm(model: nn.Module) -> IdentityNorm:
    """Replace the batch norm right after ``model``'s first convolution by an :class:`IdentityNorm` (same state
    keys, so checkpoints load into the plain model); returns it. Raises ValueError where the first convolution
    is not followed by a batch norm of its width."""
    names = [(n, m) for n, m in model.named_modules() if n]
    i = _first_conv_index(names)
    if i is None or i + 1 >= len(names) or not isinstance(names[i + 1][1], nn.BatchNorm2d):
        raise ValueError("the first convolution is not followed by a batch norm (build the model with batch_norm)")
    (name, bn), width = names[i + 1], names[i][1].out_channels
    if bn.num_features != width:
        raise ValueError(f"{name} normalises {bn.num_features} channels, the first convolution has {width}")
    fixed = IdentityNorm(bn.num_features, bn.eps).to(bn.weight.device)
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, fixed)
    return fixed
