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


# --- the paper's datasets, read from the files users download (see `nin data info NAME`) -------------
def _cifar(name: str):
    def load(split: str, root: str | None) -> Dataset:
        from nin.data.cifar import load_cifar

        return load_cifar(name, split, root)

    return load


def _idx(name: str):
    def load(split: str, root: str | None) -> Dataset:
        from nin.data.idx import load_idx_dataset

        return load_idx_dataset(name, split, root)

    return load


def _svhn(split: str, root: str | None) -> Dataset:
    from nin.data.svhn import load_svhn

    return load_svhn(split, root)


def _folder(channels: int, size: tuple[int, int]):
    def load(split: str, root: str | None) -> Dataset:
        from nin.data.imagefolder import load_image_folder

        return load_image_folder(root, split, channels, size)

    return load


for _info in (
    DatasetInfo(
        "cifar10",
        (3, 32, 32),
        10,
        ("train", "test", "train40k", "valid"),
        _cifar("cifar10"),
        "CIFAR-10: 50,000 train / 10,000 test colour images (python or binary version, .tar.gz or unpacked)",
    ),
    DatasetInfo(
        "cifar100",
        (3, 32, 32),
        100,
        ("train", "test", "train40k", "valid"),
        _cifar("cifar100"),
        "CIFAR-100 (fine labels): 50,000 train / 10,000 test colour images",
    ),
    DatasetInfo(
        "svhn",
        (3, 32, 32),
        10,
        ("train", "valid", "test", "train_only"),
        _svhn,
        "SVHN 32x32 digits: train = train + extra minus the 6,000-image maxout validation split; test 26,032",
        digits=True,
    ),
    DatasetInfo(
        "mnist",
        (1, 28, 28),
        10,
        ("train", "test", "train50k", "valid"),
        _idx("mnist"),
        "MNIST: 60,000 train / 10,000 test digits (IDX files, gzipped or not)",
        digits=True,
    ),
    DatasetInfo(
        "fashion_mnist",
        (1, 28, 28),
        10,
        ("train", "test"),
        _idx("fashion_mnist"),
        "Fashion-MNIST: 60,000 train / 10,000 test clothing images (also found where Debian installs it)",
    ),
    DatasetInfo(
        "imagefolder",
        (3, 32, 32),
        0,  # the number of class sub-folders found under data_root
        ("train", "test", "all"),
        _folder(3, (32, 32)),
        "your own images: data_root/<class>/*.png|jpg (or data_root/{train,test}/<class>/), RGB resized to 32x32",
    ),
    DatasetInfo(
        "imagefolder_gray",
        (1, 28, 28),
        0,
        ("train", "test", "all"),
        _folder(1, (28, 28)),
        "your own images as 28x28 grayscale (for the MNIST net): data_root/<class>/*.png|jpg",
    ),
):
    register_dataset(_info)
