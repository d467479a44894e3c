import numpy as np
import pytest
import torch

from nin.errors import ConfigError
from nin.viz.cam import (
    _flood_fill_components,
    as_rgb,
    cam_box,
    cam_overlay,
    colorize,
    draw_box,
    label_components,
    normalize_map,
    upsample_map,
    upscale_image,
)


def test_upsample_map_has_the_requested_size_and_keeps_the_peak_region():
    cam = torch.zeros(7, 7)
    cam[1, 5] = 3.0  # top right
    up = upsample_map(cam, (28, 42))
    assert up.shape == (28, 42)
    y, x = np.unravel_index(up.argmax(), up.shape)
    assert y < 14 and x > 21
    assert up.max() <= 3.0 + 1e-6 and up.min() >= -1e-6  # bilinear never overshoots


def test_normalize_map_range_and_dead_map():
    a = np.array([[1.0, 3.0], [5.0, 2.0]])
    n = normalize_map(a)
    assert n.min() == 0.0 and n.max() == 1.0
    assert np.allclose(n, (a - 1) / 4)
    assert not normalize_map(np.full((3, 3), 7.0)).any()


@pytest.mark.parametrize(
    "image,size",
    [
        (torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8), (28, 28)),  # dataset layout, grey
        (np.random.default_rng(0).integers(0, 256, (3, 30, 45), dtype=np.uint8), (30, 45)),  # CHW colour
        (np.random.default_rng(1).integers(0, 256, (50, 20, 3), dtype=np.uint8), (50, 20)),  # HWC
        (np.random.default_rng(2).random((16, 24)), (16, 24)),  # float grey in 0-1
    ],
)
def test_overlay_is_rgb_uint8_of_the_input_size(image, size):
    out = cam_overlay(image, torch.rand(7, 7), alpha=0.4, box=True)
    assert out.dtype == np.uint8
    assert out.shape == (*size, 3)


def test_overlay_alpha_blends_image_and_heat_map():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    cam = rng.random((8, 8))
    assert np.array_equal(cam_overlay(img, cam, alpha=0.0), img)
    heat = colorize(normalize_map(upsample_map(cam, (32, 32))), "jet")
    assert np.array_equal(cam_overlay(img, cam, alpha=1.0), heat)
    half = cam_overlay(img, cam, alpha=0.5).astype(int)
    assert np.abs(half - (img.astype(int) + heat.astype(int)) / 2).max() <= 1


def test_overlay_rejects_bad_alpha_and_unknown_colormap():
    with pytest.raises(ValueError):
        cam_overlay(np.zeros((4, 4)), np.zeros((2, 2)), alpha=1.5)
    with pytest.raises(ConfigError, match="colormap"):
        cam_overlay(np.zeros((4, 4)), np.eye(2), cmap="no-such-map")


def test_box_is_the_largest_region_above_20_percent_of_the_max():
    cam = np.zeros((40, 60))
    cam[5:15, 10:30] = 1.0  # large region at full strength
    cam[30:33, 50:55] = 0.9  # smaller region, also above the threshold
    cam[20:25, 0:5] = 0.19  # below 20% of the max: ignored
    assert cam_box(cam) == (10, 5, 29, 14)  # (left, top, right, bottom), inclusive
    cam[30:40, 35:60] = 0.5  # 250 pixels against 200: now this region is the largest
    assert cam_box(cam) == (35, 30, 59, 39)
    assert cam_box(cam, threshold=0.95) == (10, 5, 29, 14)  # only the strongest region survives


def test_box_of_a_dead_map_is_none_and_overlay_still_works():
    assert cam_box(np.zeros((7, 7))) is None
    out = cam_overlay(np.full((28, 28), 128, np.uint8), np.zeros((7, 7)), box=True)
    assert out.shape == (28, 28, 3)


def test_flood_fill_agrees_with_scipy():
    from scipy import ndimage

    rng = np.random.default_rng(3)
    for _ in range(5):
        mask = rng.random((23, 31)) > 0.55
        ours, n_ours = _flood_fill_components(mask)
        ref, n_ref = ndimage.label(mask)
        assert n_ours == n_ref
        # same partition up to renumbering: each of our labels maps to exactly one of theirs
        pairs = {(a, b) for a, b in zip(ours[mask], ref[mask])}
        assert len(pairs) == n_ref


def test_box_without_scipy_uses_the_flood_fill(monkeypatch):
    import sys

    cam = np.random.default_rng(4).random((9, 9))
    with_scipy = cam_box(upsample_map(cam, (40, 40)))
    monkeypatch.setitem(sys.modules, "scipy", None)  # import scipy now raises ImportError
    labels, n = label_components(np.eye(3, dtype=bool))
    assert n == 3 and labels.max() == 3  # diagonal pixels are not 4-connected
    assert cam_box(upsample_map(cam, (40, 40))) == with_scipy


def test_draw_box_touches_only_the_outline():
    img = np.zeros((20, 20, 3), np.uint8)
    out = draw_box(img, (4, 5, 14, 15), (255, 0, 0), width=1)
    assert out[5, 4:15, 0].all() and out[15, 4:15, 0].all() and out[5:16, 4, 0].all()
    assert not out[6:15, 5:14].any()  # inside untouched
    assert not img.any()  # input not modified


def test_as_rgb_and_upscale():
    grey = torch.arange(12, dtype=torch.uint8).reshape(1, 3, 4)
    rgb = as_rgb(grey)
    assert rgb.shape == (3, 4, 3) and (rgb[..., 0] == rgb[..., 2]).all()
    big = upscale_image(grey, 10)
    assert big.shape == (12, 16, 3)  # factor 4: shorter side 3 -> 12 >= 10
    assert big[0, 0, 0] == 0 and big[11, 15, 0] == 11
