"""Datasets by name: ``load_dataset(name, split, root=None) -> Dataset``.

Each entry knows its splits and its image shape; readers for downloaded datasets register here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nin.data.dataset import Dataset
from nin.errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    splits: tuple[str, ...]
    loader: Callable[[str, str | None], Dataset]  # (split, root) -> Dataset
    description: str = ""
    digits: bool = False  # horizontal flips make no sense for digits


_DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    if info.name in _DATASETS:
        raise RuntimeError(f"dataset {info.name!r} is registered twice")
    _DATASETS[info.name] = info
    return info


def list_datasets() -> list[str]:
    return sorted(_DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    if name not in _DATASETS:
        raise DataError(f"unknown dataset {name!r}; valid names: {', '.join(list_datasets())}")
    return _DATASETS[name]


def load_dataset(name: str, split: str = "train", root: str | None = None) -> Dataset:
    """Load split ``split`` of dataset ``name`` (files under ``root`` where the dataset needs files)."""
    info = dataset_info(name)
    if split not in info.splits:
        raise DataError(f"dataset {name!r} has no split {split!r}; valid: {', '.join(info.splits)}")
    return info.loader(split, root)


def _embedded(split: str, root: str | None) -> Dataset:
    from nin.data.embedded import load_embedded_mnist

    return load_embedded_mnist(split)


def _synthetic(shape: tuple[int, int, int], k: int, n_train: int, n_test: int):
    def load(split: str, root: str | None) -> Dataset:
        from nin.data.synthetic import synthetic_dataset

        n, seed = (n_train, 1) if split == "train" else (n_test, 2)
        return synthetic_dataset(shape, k, n, seed=seed, name=f"synthetic:{split}")

    return load


register_dataset(
    DatasetInfo(
        "mnist_embedded",
        (1, 28, 28),
        10,
        ("train", "test", "all"),
        _embedded,
        "10,000 real MNIST digits shipped with nin (8,000 train / 2,000 test, stratified)",
        digits=True,
    )
)
for _name, _shape, _k in (
    ("synthetic_cifar10", (3, 32, 32), 10),
    ("synthetic_cifar100", (3, 32, 32), 100),
    ("synthetic_mnist", (1, 28, 28), 10),
    ("synthetic_imagenet", (3, 224, 224), 1000),
):
    _n = (2000, 1000) if _k == 1000 else (1024, 256)
    register_dataset(
        DatasetInfo(
            _name,
            _shape,
            _k,
            ("train", "test"),
            _synthetic(_shape, _k, *_n),
            f"random learnable images shaped like {_name.removeprefix('synthetic_')} (smoke runs, benchmarks)",
        )
    )
