import numpy as np
import pytest
import torch

from nin.data import build_preprocessor, load_dataset, preprocessor_from_state, stratified_split
from nin.data.augment import random_flip, random_translate
from nin.errors import ConfigError, DataError


def test_embedded_split_is_fixed_stratified_and_disjoint():
    train, test = load_dataset("mnist_embedded", "train"), load_dataset("mnist_embedded", "test")
    assert (len(train), len(test)) == (8000, 2000)
    assert train.shape == (1, 28, 28) and train.images.dtype == torch.uint8
    counts = torch.bincount(test.labels, minlength=10)
    full = torch.bincount(load_dataset("mnist_embedded", "all").labels, minlength=10)
    assert torch.all((counts - full * 0.2).abs() <= 1)
    from nin.data.embedded import split_indices

    a, b = split_indices()
    assert len(np.intersect1d(a, b)) == 0 and np.array_equal(a, split_indices()[0])


def test_stratified_split_exact_sizes():
    labels = np.repeat(np.arange(3), [10, 7, 5])
    tr, te = stratified_split(labels, 0.25, 0)
    assert len(te) == round(22 * 0.25) and len(tr) + len(te) == 22


def test_unknown_dataset_and_split():
    with pytest.raises(DataError, match="valid names"):
        load_dataset("cifar11")
    with pytest.raises(DataError, match="no split"):
        load_dataset("mnist_embedded", "val")


def test_mean_std_round_trip():
    ds = load_dataset("synthetic_cifar10", "test")
    p = build_preprocessor("mean_std").fit(ds.images)
    out = p(ds.images)
    assert out.dtype == torch.float32
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-3
    assert (out.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-2
    q = preprocessor_from_state(p.state_dict())
    torch.testing.assert_close(q(ds.images[:5]), p(ds.images[:5]))
    with pytest.raises(ConfigError, match="valid"):
        build_preprocessor("zca2")


def test_translate_keeps_shape_dtype_and_really_shifts():
    x = torch.zeros(64, 1, 8, 8, dtype=torch.uint8)
    x[:, :, 4, 4] = 255
    g = torch.Generator().manual_seed(0)
    y = random_translate(x, 2, g)
    assert y.shape == x.shape and y.dtype == torch.uint8
    pos = y[:, 0].flatten(1).argmax(1)
    rows, cols = pos // 8, pos % 8
    assert set(rows.tolist()) == {2, 3, 4, 5, 6} and set(cols.tolist()) == {2, 3, 4, 5, 6}
    assert (y.flatten(1).sum(1) == 255).all()  # one pixel each, never lost with pad 2


def test_flip_mirrors_about_half():
    x = torch.arange(8, dtype=torch.uint8).repeat(200, 1, 1, 1)
    y = random_flip(x, torch.Generator().manual_seed(0))
    flipped = y[:, 0, 0, 0] == 7
    assert 60 < int(flipped.sum()) < 140
    assert torch.equal(y[flipped], x[flipped].flip(3))
    assert torch.equal(y[~flipped], x[~flipped])
