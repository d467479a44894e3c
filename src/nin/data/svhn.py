"""SVHN reader: ``train/test/extra_32x32.mat`` (MATLAB v5: X (32, 32, 3, N) uint8, y (N, 1), label 10 = digit 0),
read with scipy (extra ``data``), and the maxout validation split the paper uses (§4.4).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch

from nin.data.checksums import check_file
from nin.data.dataset import Dataset
from nin.data.locate import require_files
from nin.data.sources import DIGITS, Source, get_source
from nin.errors import DataError
from nin.extras import require

# The maxout split (paper §4.4): validation = 400 per class from train + 200 per class from extra.
VALID_PER_CLASS = (400, 200)
# Deviation from paper: which images pylearn2 held out is not recoverable; ours are drawn per class
# with this fixed seed, so the split is the same on every machine.
SPLIT_SEED = 20131216
_CHUNK = 16384  # images transposed at a time (bounds the extra memory of the (32, 32, 3, N) -> NCHW copy)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (X as stored: uint8 (32, 32, 3, N), labels int64 (N,) with 10 mapped to 0)."""
    loadmat = require("scipy.io", "reading SVHN").loadmat
    try:
        m = loadmat(path, variable_names=("X", "y"))
    except (ValueError, TypeError, OSError, EOFError, zlib.error, NotImplementedError) as exc:
        raise DataError(f"{path} cannot be read as a MATLAB file ({exc}): it is truncated or damaged") from None
    x, y = m.get("X"), m.get("y")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        what = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else "missing"
        raise DataError(f"{path}: X is {what}, not uint8 (32, 32, 3, N): it is not an SVHN 32x32 file")
    if not isinstance(y, np.ndarray) or y.size != x.shape[3]:
        raise DataError(f"{path}: y does not hold one label per image: it is not an SVHN 32x32 file")
    labels = y.reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise DataError(f"{path}: labels outside 1..10: it is not an SVHN 32x32 file")
    return x, labels % 10  # SVHN stores digit 0 as label 10


def _nchw(x: np.ndarray, index: np.ndarray, out: torch.Tensor, offset: int) -> int:
    """Write images ``index`` of X (32, 32, 3, N) into ``out[offset:]`` as (n, 3, 32, 32); returns the new offset."""
    for i in range(0, len(index), _CHUNK):
        chunk = x[:, :, :, index[i : i + _CHUNK]].transpose(3, 2, 0, 1)
        out[offset : offset + chunk.shape[0]] = torch.from_numpy(np.ascontiguousarray(chunk))
        offset += chunk.shape[0]
    return offset


def valid_indices(train_labels: np.ndarray, extra_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices into train and extra of the validation images (VALID_PER_CLASS per class)."""
    rng = np.random.default_rng(SPLIT_SEED)
    picks = []
    for labels, k in zip((train_labels, extra_labels), VALID_PER_CLASS, strict=True):
        idx = [rng.permutation(np.flatnonzero(labels == c))[:k] for c in range(10)]
        picks.append(np.sort(np.concatenate(idx)))
    return picks[0], picks[1]


def _read(source: Source, paths: dict[str, Path], name: str, root) -> tuple[np.ndarray, np.ndarray]:
    # Unlike the IDX and CIFAR readers (one read: the md5 is taken of the bytes parsed), extra_32x32.mat is
    # 1.3 GB, so it is hashed streaming (memoised per file) and parsed from disk rather than held twice in memory.
    check_file(paths[name], source.file(name), source, root)
    return read_svhn_mat(paths[name])


def load_svhn(split: str, root: str | None = None) -> Dataset:
    """SVHN split ``split``: ``train`` (train + extra minus validation: 598,388 images, paper §4.4),
    ``valid`` (6,000), ``test`` (26,032) or ``train_only`` (the 73,257 images of train_32x32.mat).
    """
    source = get_source("svhn")
    need = source.split_files[split]
    paths = require_files(source, need, root)  # fail before the long reads
    if split in ("test", "train_only"):
        x, y = _read(source, paths, "test_32x32.mat" if split == "test" else "train_32x32.mat", root)
        parts = [(x, np.arange(len(y)), y)]
    else:
        xt, yt = _read(source, paths, "train_32x32.mat", root)
        xe, ye = _read(source, paths, "extra_32x32.mat", root)
        vt, ve = valid_indices(yt, ye)
        if split == "valid":
            it, ie = vt, ve
        else:
            it, ie = np.setdiff1d(np.arange(len(yt)), vt), np.setdiff1d(np.arange(len(ye)), ve)
        parts = [(xt, it, yt[it]), (xe, ie, ye[ie])]
    n = sum(len(p[1]) for p in parts)
    images = torch.empty((n, 3, 32, 32), dtype=torch.uint8)
    offset = 0
    for x, index, _ in parts:
        offset = _nchw(x, index, images, offset)
    labels = torch.from_numpy(np.concatenate([p[2] for p in parts]))
    ds = Dataset(images, labels, DIGITS, f"svhn:{split}")
    ds.meta.update(source=str(paths[need[0]]))
    return ds
