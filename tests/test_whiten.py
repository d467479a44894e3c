"""GCN, ZCA and LCN (pylearn2's pipelines): the maths, the state in checkpoints, and the fit cache."""

import io
import logging

import numpy as np
import pytest
import torch

from nin.data import build_preprocessor, preprocessor_from_state, whiten
from nin.data.whiten import gaussian_kernel, gcn, lcn, zca_matrix, zca_matrix_low_rank


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("NIN_CACHE_DIR", str(tmp_path / "cache"))


def _images(n: int, shape=(3, 4, 4), seed: int = 0) -> torch.Tensor:
    """Correlated uint8 images: a few smooth random components plus noise."""
    g = torch.Generator().manual_seed(seed)
    d = int(np.prod(shape))
    basis = torch.randn(6, d, generator=g)
    x = 128 + torch.randn(n, 6, generator=g) @ basis * 12 + torch.randn(n, d, generator=g) * 25
    return x.clamp(0, 255).round().to(torch.uint8).view(n, *shape)


def test_gcn_gives_zero_mean_and_l2_norm_55():
    x = _images(50)
    y = gcn(x, 55.0).flatten(1)
    torch.testing.assert_close(y.mean(1), torch.zeros(50), atol=1e-4, rtol=0)
    torch.testing.assert_close(y.norm(dim=1), torch.full((50,), 55.0), rtol=1e-5, atol=0)
    flat = gcn(torch.full((2, 3, 4, 4), 7, dtype=torch.uint8))  # constant images: centred, no NaN
    assert torch.equal(flat, torch.zeros_like(flat))


def test_zca_whitened_training_data_has_identity_covariance_off_the_shrinkage():
    eps = 0.1
    x = _images(3000, seed=1)
    p = build_preprocessor("gcn_zca", eps=eps).fit(x)
    z = p(x).flatten(1).double()
    cov_z = (z - z.mean(0)).T @ (z - z.mean(0)) / len(z)
    g = gcn(x).flatten(1).double()
    cov = (g - g.mean(0)).T @ (g - g.mean(0)) / len(g)
    lam, v = torch.linalg.eigh(cov)
    lam = lam.clamp_min(0)
    torch.testing.assert_close(cov_z, (v * (lam / (lam + eps))) @ v.T, atol=2e-4, rtol=0)
    strong = v[:, lam > 100 * eps]  # directions where the eps shrinkage is negligible: exactly white
    assert strong.shape[1] >= 40
    torch.testing.assert_close(
        strong.T @ cov_z @ strong, torch.eye(strong.shape[1], dtype=torch.float64), atol=1e-2, rtol=0
    )
    # GCN removes each image's mean: the all-ones direction carries no variance, before or after
    ones = torch.ones(48, dtype=torch.float64) / 48**0.5
    assert float(ones @ cov_z @ ones) < 1e-6


def test_zca_matches_pylearn2_formula_and_the_low_rank_path():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(20, 64, generator=g, dtype=torch.float64)
    x = x - x.mean(0)
    w_eigh = zca_matrix(x.T @ x / len(x), 0.1)
    lam, v = np.linalg.eigh((x.T @ x / len(x)).numpy() + 0.1 * np.eye(64))  # pylearn2: eigh(cov + bias I)
    ref = (v * (1.0 / np.sqrt(lam))) @ v.T
    np.testing.assert_allclose(w_eigh.numpy(), ref, atol=1e-9)
    torch.testing.assert_close(zca_matrix_low_rank(x, 0.1), w_eigh, atol=1e-9, rtol=0)
    # the preprocessor picks the low-rank path for N < D: same transform
    imgs = _images(20, (1, 8, 8), seed=4)
    p = build_preprocessor("gcn_zca").fit(imgs)
    gx = gcn(imgs).flatten(1).double()
    mean = gx.mean(0)
    torch.testing.assert_close(p.W.double(), zca_matrix(((gx - mean).T @ (gx - mean)) / 20, 0.1), atol=1e-5, rtol=1e-5)


def test_zca_state_goes_into_a_weights_only_checkpoint_and_back():
    x = _images(200, seed=5)
    p = build_preprocessor("gcn_zca").fit(x)
    buf = io.BytesIO()
    torch.save(p.state_dict(), buf)
    buf.seek(0)
    q = preprocessor_from_state(torch.load(buf, weights_only=True))
    assert q.options() == {"scale": 55.0, "eps": 0.1} and q.W.shape == (48, 48)
    torch.testing.assert_close(q(x[:7]), p(x[:7]))
    torch.testing.assert_close(p(x)[:7], p(x[:7]))  # per-image transform: batch composition does not matter
    assert p(x[:3].float()).dtype == torch.float32


def test_zca_fit_is_cached_and_reused(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(whiten, "CACHE_MIN_IMAGES", 10)
    x = _images(100, seed=6)
    p = build_preprocessor("gcn_zca").fit(x)
    files = list((tmp_path / "cache" / "preprocess").iterdir())
    assert len(files) == 1 and files[0].name.startswith("gcn_zca-eps0.1-scale55.0-100x3x4x4-")

    def refit(*a, **k):
        raise AssertionError("refit although cached")

    monkeypatch.setattr(whiten.GCNZCA, "_fit", refit)
    q = build_preprocessor("gcn_zca").fit(x)
    torch.testing.assert_close(q.W, p.W)
    torch.testing.assert_close(q.mean, p.mean)
    with pytest.raises(AssertionError, match="refit"):
        build_preprocessor("gcn_zca", eps=0.01).fit(x)  # other options: another entry
    with pytest.raises(AssertionError, match="refit"):
        build_preprocessor("gcn_zca").fit(_images(100, seed=7))  # other images: another entry
    monkeypatch.undo()
    monkeypatch.setenv("NIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(whiten, "CACHE_MIN_IMAGES", 10)
    files[0].write_bytes(b"damaged")
    with caplog.at_level(logging.WARNING):
        r = build_preprocessor("gcn_zca").fit(x)
    assert "damaged preprocessing cache" in caplog.text
    torch.testing.assert_close(r.W, p.W)
    assert not [f for f in files[0].parent.iterdir() if f.suffix == ".tmp"]


def _lcn_reference(x: np.ndarray, kernel: np.ndarray, threshold: float) -> np.ndarray:
    """pylearn2's lecun_lcn for one channel of one image, written with loops."""
    h, w = x.shape
    k = kernel.shape[0]
    m = k // 2
    pad = np.pad(x, m)
    pad2 = np.pad(x * x, m)
    mean = np.zeros_like(x)
    sq = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            mean[i, j] = (pad[i : i + k, j : j + k] * kernel).sum()
            sq[i, j] = (pad2[i : i + k, j : j + k] * kernel).sum()
    denom = np.sqrt(sq)
    divisor = np.maximum(np.maximum(denom, denom.mean()), threshold)
    return (x - mean) / divisor


def test_lcn_matches_the_pylearn2_formula():
    k = gaussian_kernel(7, 2.0)
    assert k.shape == (7, 7) and abs(float(k.sum()) - 1) < 1e-6 and torch.equal(k, k.T) and torch.equal(k, k.flip(0))
    assert float(k[3, 4] / k[3, 3]) == pytest.approx(np.exp(-1 / 8), rel=1e-5)  # sigma 2
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    y = lcn(x, k, 1e-4)
    for n in range(2):
        for c in range(3):
            ref = _lcn_reference(x[n, c].double().numpy(), k.double().numpy(), 1e-4)
            np.testing.assert_allclose(y[n, c].numpy(), ref, atol=1e-5)


def test_lcn_properties():
    k = gaussian_kernel()
    flat = torch.full((1, 3, 16, 16), 0.3)
    y = lcn(flat, k)
    assert y[:, :, 3:-3, 3:-3].abs().max() < 1e-6  # no contrast, no output (away from the zero-padded border)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(lcn(5 * x, k), lcn(x, k), atol=1e-5, rtol=1e-4)  # contrast, not brightness scale
    x2 = x.clone()
    x2[:, 1] = 0.9
    torch.testing.assert_close(lcn(x2, k)[:, 0], lcn(x, k)[:, 0])  # channels are normalised independently
    assert torch.isfinite(lcn(torch.zeros(1, 3, 8, 8), k)).all()  # below threshold: no division by ~0


def test_gcn_lcn_preprocessor_round_trip():
    x = _images(6, (3, 32, 32))
    p = build_preprocessor("gcn_lcn")
    y = p(x)
    assert y.shape == x.shape and y.dtype == torch.float32 and torch.isfinite(y).all()
    torch.testing.assert_close(y, lcn(gcn(x, 1.0), gaussian_kernel(7, 2.0), 1e-4))
    q = preprocessor_from_state(p.state_dict())
    assert q.options() == {"scale": 1.0, "kernel_size": 7, "sigma": 2.0, "threshold": 1e-4}
    torch.testing.assert_close(q(x), y)


def test_fitted_zca_travels_in_the_checkpoint(tmp_path):
    """Training fits GCN + ZCA on the train split; the checkpoint carries mean and W for eval and prediction."""
    from nin.data.synthetic import synthetic_dataset
    from nin.train.checkpoint import load_checkpoint
    from nin.train.engine import train
    from nin.train.experiments import get_config
    from nin.train.runtime import Runtime

    data = synthetic_dataset((3, 32, 32), 10, 8, seed=1), synthetic_dataset((3, 32, 32), 10, 4, seed=2)
    cfg = get_config("cifar10").replace(epochs=1, max_steps=1, batch_size=4, stall_steps=0, device="cpu")
    train(cfg, out_dir=tmp_path, progress=False, data=data, runtime=Runtime(torch.device("cpu"), None, False, False))
    ckpt = load_checkpoint(tmp_path / "last.pt")  # weights_only
    pre = preprocessor_from_state(ckpt["preprocess"])
    fresh = build_preprocessor("gcn_zca").fit(data[0].images)
    assert ckpt["preprocess"]["name"] == "gcn_zca" and pre.W.shape == (3072, 3072)
    torch.testing.assert_close(pre(data[1].images), fresh(data[1].images))
