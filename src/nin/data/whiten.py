"""The paper's preprocessing (pylearn2's maxout pipelines; docs/reproduction.md) as batched torch ops on any device.

- ``gcn_zca`` (CIFAR-10/100): global contrast normalisation — per image, subtract its mean, divide by its
  L2 norm, times 55 — then ZCA whitening fit on the training split: W = V diag(1/sqrt(lambda + 0.1)) V^T
  of the mean-centred 3072-d covariance; apply = (x_flat - mean) @ W.
- ``gcn_lcn`` (SVHN): GCN (scale 1), then local contrast normalisation per channel with a 7x7 Gaussian
  (sigma 2), threshold 1e-4 (pylearn2's ``lecun_lcn``).

The fitted ZCA statistics go into checkpoints through ``state_dict()`` and are cached on disk
(:mod:`nin.data.cache`) so a rerun on the same training split does not refit.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from nin.data import cache
from nin.data.preprocess_base import Preprocessor

log = logging.getLogger(__name__)

CACHE_MIN_IMAGES = 5000  # smaller fits take well under a second: not worth a cache file
_CHUNK = 4096  # images per matmul while accumulating the covariance (bounds memory: 4096 x 3072 floats)


def gcn(x: torch.Tensor, scale: float = 55.0, min_divisor: float = 1e-8) -> torch.Tensor:
    """Global contrast normalisation of each image (N, ...): zero mean, L2 norm ``scale``.

    As pylearn2's ``global_contrast_normalize(scale=s, sqrt_bias=0, use_std=False)``: an image whose
    norm / scale falls below ``min_divisor`` (a constant image) is only centred.
    """
    flat = x.float().flatten(1)
    flat = flat - flat.mean(dim=1, keepdim=True)
    norm = flat.norm(dim=1, keepdim=True) / scale
    norm = torch.where(norm < min_divisor, torch.ones_like(norm), norm)
    return (flat / norm).view(x.shape)


def zca_matrix(cov: torch.Tensor, eps: float) -> torch.Tensor:
    """W = V diag(1 / sqrt(lambda + eps)) V^T for a symmetric covariance (float64 eigendecomposition)."""
    lam, v = torch.linalg.eigh(cov.double())
    lam = lam.clamp_min(0.0)  # round-off can make the smallest eigenvalues slightly negative
    return (v * (lam + eps).rsqrt()) @ v.T


def zca_matrix_low_rank(centred: torch.Tensor, eps: float) -> torch.Tensor:
    """The same W from the data itself when N < D: the covariance X^T X / N has rank <= N, and on the
    orthogonal complement of the data's span W is 1/sqrt(eps) (exact, via a thin SVD: no D x D eigh).
    """
    x = centred.double()
    n, d = x.shape
    _, s, vh = torch.linalg.svd(x, full_matrices=False)  # (k,), (k, D)
    lam = s.square() / n
    w = (vh.T * ((lam + eps).rsqrt() - 1.0 / math.sqrt(eps))) @ vh
    return w + torch.eye(d, dtype=x.dtype, device=x.device) / math.sqrt(eps)


class GCNZCA(Preprocessor):
    """GCN (x ``scale``) then ZCA whitening with ``eps`` shrinkage, fit on the training split (pylearn2)."""

    name = "gcn_zca"
    needs_fit = True

    def __init__(self, scale: float = 55.0, eps: float = 0.1) -> None:
        super().__init__()
        self.scale = float(scale)
        self.eps = float(eps)
        self.mean = torch.zeros(0)
        self.W = torch.zeros(0, 0)

    def options(self) -> dict:
        return {"scale": self.scale, "eps": self.eps}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "W": self.W}

    def fit(self, images: torch.Tensor) -> GCNZCA:
        """Fit mean and W on uint8 (N, C, H, W) training images; reuse a cached fit of the same images."""
        key = cache.fit_key(self.name, self.options(), images) if len(images) >= CACHE_MIN_IMAGES else None
        cached = cache.load(key) if key else None
        if cached is not None and {"mean", "W"} <= set(cached):
            self.mean, self.W = cached["mean"].float(), cached["W"].float()
        else:
            self.mean, self.W = self._fit(images)
            if key:
                cache.save(key, self.tensors())
        self._cache.clear()
        return super().fit(images)

    def _fit(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = images.shape[0]
        d = images[0].numel()
        log.info("fitting GCN + ZCA on %d images of %d values (once; cached for reruns)", n, d)
        if n <= d:
            x = gcn(images, self.scale).flatten(1).double()
            mean = x.mean(dim=0)
            return mean.float(), zca_matrix_low_rank(x - mean, self.eps).float()
        total = torch.zeros(d, dtype=torch.float64, device=images.device)
        for i in range(0, n, _CHUNK):
            total += gcn(images[i : i + _CHUNK], self.scale).flatten(1).double().sum(dim=0)
        mean = total / n
        mean32 = mean.float()
        cov = torch.zeros(d, d, dtype=torch.float64, device=images.device)
        for i in range(0, n, _CHUNK):
            c = gcn(images[i : i + _CHUNK], self.scale).flatten(1) - mean32  # (chunk, D) float32
            cov += (c.T @ c).double()  # float32 products of 4096 rows, summed in float64
        return mean32, zca_matrix(cov / n, self.eps).float()

    def _apply(self, x: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        flat = gcn(x, self.scale).flatten(1)  # (B, D)
        return ((flat - t["mean"]) @ t["W"]).view(x.shape)


def gaussian_kernel(size: int = 7, sigma: float = 2.0) -> torch.Tensor:
    """pylearn2's ``gaussian_filter``: a (size, size) Gaussian centred on the middle pixel, summing to 1."""
    r = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return (g / g.sum()).float()


def lcn(x: torch.Tensor, kernel: torch.Tensor, threshold: float = 1e-4) -> torch.Tensor:
    """Local contrast normalisation of each channel (pylearn2's ``lecun_lcn``), x float (N, C, H, W).

    Subtract the Gaussian-weighted local mean, then divide by max(local norm, the image's mean local norm,
    ``threshold``). Borders see zeros outside the image ('full' convolution cropped back to H x W).
    """
    c = x.shape[1]
    k = kernel.shape[-1]
    w = kernel.to(x.dtype).expand(c, 1, k, k)
    local_mean = F.conv2d(x, w, padding=k // 2, groups=c)
    # As pylearn2: the local norm is taken of the raw squares, not of the centred values.
    local_norm = F.conv2d(x * x, w, padding=k // 2, groups=c).clamp_min(0).sqrt()
    per_image = local_norm.mean(dim=(2, 3), keepdim=True)
    divisor = torch.maximum(local_norm, per_image).clamp_min(threshold)
    return (x - local_mean) / divisor


class GCNLCN(Preprocessor):
    """SVHN's preprocessing (pylearn2): GCN (x ``scale``), then per-channel LCN (7x7 Gaussian, sigma 2)."""

    name = "gcn_lcn"
    needs_fit = False  # nothing is fit; the kernel is stored so a checkpoint carries the exact transform

    def __init__(self, scale: float = 1.0, kernel_size: int = 7, sigma: float = 2.0, threshold: float = 1e-4):
        super().__init__()
        self.scale = float(scale)
        self.kernel_size = int(kernel_size)
        self.sigma = float(sigma)
        self.threshold = float(threshold)
        self.kernel = gaussian_kernel(self.kernel_size, self.sigma)

    def options(self) -> dict:
        return {"scale": self.scale, "kernel_size": self.kernel_size, "sigma": self.sigma, "threshold": self.threshold}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"kernel": self.kernel}

    def _apply(self, x: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        return lcn(gcn(x, self.scale), t["kernel"], self.threshold)
