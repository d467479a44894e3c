"""Synthetic datasets of the right shapes for smoke runs, tests and benchmarks (no files needed).

Each class has a fixed random template; images are template + noise, so a net can learn them.
"""

from __future__ import annotations

import torch

from nin.data.dataset import Dataset


def synthetic_dataset(
    shape: tuple[int, int, int],
    num_classes: int,
    n: int,
    seed: int = 0,
    name: str = "synthetic",
    template_seed: int = 0,
) -> Dataset:
    """``n`` uint8 images of ``shape`` (C, H, W), balanced over ``num_classes`` learnable classes.

    The class templates depend only on ``template_seed``, so splits drawn with different ``seed`` share them.
    """
    templates = torch.randint(
        0, 256, (num_classes, *shape), generator=torch.Generator().manual_seed(template_seed)
    ).float()
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=g)]
    noise = torch.randn((n, *shape), generator=g) * 40.0
    images = (templates[labels] * 0.6 + 50 + noise).clamp(0, 255).to(torch.uint8)
    return Dataset(images, labels.to(torch.int64), tuple(f"class{i}" for i in range(num_classes)), name)
