"""The folders and models ``nin bench --predict`` measures: small digit PNGs, and photo-sized JPEGs made procedurally.

- :func:`write_digit_folder`: embedded MNIST digits, 28x28 grey PNGs in nested folders, through the quickstart's
  NIN-MNIST + BN (:func:`quickstart_predictor`).
- :func:`write_photo_folder`: JPEGs of a photo's size and statistics (500x375 by default, the typical ImageNet
  photo): a smooth random colour field, overlapping shapes, a slight blur and sensor-like noise, saved at
  quality 90, so a decoder does the work a real photo asks of it; through an untrained ImageNet NIN with the
  Caffe preprocessing of imported checkpoints (:func:`photo_predictor`: warp to 256x256, centre crop 224).

Untrained weights compute exactly as fast as trained ones; the classes they give mean nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nin.serve.predictor import Predictor

PHOTO_SIZE = (500, 375)  # width, height


def _broken_files(root: Path, sample: Path) -> None:
    (root / "broken").mkdir(parents=True, exist_ok=True)
    (root / "broken" / f"truncated{sample.suffix}").write_bytes(sample.read_bytes()[:40])
    (root / "broken" / "not-an-image.jpg").write_text("a text file with an image suffix\n")


def write_digit_folder(folder: str | Path, n: int) -> int:
    """``n`` embedded MNIST digits as PNG files in nested folders (``label/shard/``) and two broken files."""
    from PIL import Image

    from nin.data.embedded import load_embedded_mnist

    data = load_embedded_mnist("all")
    root = Path(folder)
    for i in range(n):
        j = (i * 7919) % len(data.labels)  # a prime stride: every class early on (the file is sorted by class)
        sub = root / str(int(data.labels[j])) / f"{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.images[j, 0].numpy()).save(sub / f"{i:07d}.png")
    _broken_files(root, sub / f"{n - 1:07d}.png")
    return n + 2


def photo(seed: int, size: tuple[int, int] = PHOTO_SIZE):
    """One photo-like RGB image (PIL) of ``size`` (width, height), the same for the same seed."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    w, h = size
    img = Image.fromarray(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    a = np.asarray(img.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.int16)
    a = a + rng.normal(0.0, 6.0, a.shape).astype(np.int16)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def write_photo_folder(folder: str | Path, n: int, size: tuple[int, int] = PHOTO_SIZE) -> int:
    """``n`` photo-like JPEGs (:func:`photo`, quality 90) in ten sub-folders, and two broken files."""
    root = Path(folder)
    for i in range(n):
        sub = root / f"{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        photo(i, size).save(sub / f"{i:06d}.jpg", quality=90)
    _broken_files(root, sub / f"{n - 1:06d}.jpg")
    return n + 2


def quickstart_predictor(device: str, precision: str) -> Predictor:
    """An untrained NIN-MNIST + BN, the quickstart's network, with its preprocessing fitted on the digits."""
    from nin.data.embedded import DIGITS, load_embedded_mnist
    from nin.data.preprocess import build_preprocessor
    from nin.models import build_model
    from nin.train.checkpoint import make_checkpoint

    torch.manual_seed(0)
    opts = {"batch_norm": True, "init": "kaiming"}
    net = build_model("nin_mnist", **opts).eval()
    pre = build_preprocessor("mean_std").fit(load_embedded_mnist("train").images)
    ckpt = make_checkpoint("nin_mnist", opts, net, pre.state_dict(), DIGITS, (1, 28, 28))
    return Predictor.from_checkpoint_dict(ckpt, device=device, precision=precision)


def photo_predictor(device: str, precision: str, model: str = "nin_imagenet") -> Predictor:
    """An untrained ImageNet-size NIN (3x224x224, 1,000 classes) with the Caffe preprocessing (``imagenet``)."""
    from nin.data.preprocess import build_preprocessor
    from nin.models import build_model
    from nin.train.checkpoint import make_checkpoint

    torch.manual_seed(0)
    net = build_model(model).eval()
    pre = build_preprocessor("imagenet")
    classes = [f"class_{i}" for i in range(1000)]
    ckpt = make_checkpoint(model, {}, net, pre.state_dict(), classes, (3, 224, 224))
    return Predictor.from_checkpoint_dict(ckpt, device=device, precision=precision)
