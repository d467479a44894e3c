"""The dataset contract: uint8 images (N, C, H, W), int64 labels, class names. Readers never normalise."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from nin.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """An in-memory labelled image set.

    Attributes:
        images: uint8 tensor (N, C, H, W).
        labels: int64 tensor (N,), values in ``range(len(classes))``.
        classes: class names, index = label.
        name: where it came from (``mnist_embedded:train``), for messages and reports.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str = "unnamed"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError(
                f"{self.name}: images must be a uint8 (N, C, H, W) tensor, got "
                f"{self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise DataError(
                f"{self.name}: labels must be int64 (N,), got {self.labels.dtype} "
                f"{tuple(self.labels.shape)} for {self.images.shape[0]} images"
            )
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise DataError(f"{self.name}: labels outside 0..{len(self.classes) - 1}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @classmethod
    def from_numpy(cls, images: np.ndarray, labels: np.ndarray, classes, name: str) -> Dataset:
        """Build from NHWC / NHW / NCHW-uint8 numpy arrays (NHWC when the last axis is 1 or 3)."""
        a = np.asarray(images)
        if a.dtype != np.uint8:
            raise DataError(f"{name}: expected uint8 pixels, got {a.dtype}")
        if a.ndim == 3:
            a = a[:, None]
        elif a.ndim == 4 and a.shape[-1] in (1, 3) and a.shape[1] not in (1, 3):
            a = a.transpose(0, 3, 1, 2)
        return cls(
            torch.from_numpy(np.ascontiguousarray(a)),
            torch.from_numpy(np.asarray(labels).astype(np.int64).reshape(-1)),
            tuple(str(c) for c in classes),
            name,
        )


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices so each class keeps ``test_fraction`` of its items in test (largest remainder).

    Deterministic for a given ``seed``; returns sorted (train, test) index arrays.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    n_test = round(len(labels) * test_fraction)
    exact = counts * n_test / len(labels)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: n_test - take.sum()]:
        take[i] += 1
    rng = np.random.default_rng(seed)
    test = []
    for c, k in zip(classes, take, strict=True):
        members = np.flatnonzero(labels == c)
        test.append(rng.permutation(members)[:k])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx
