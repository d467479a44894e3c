"""The ``imagenet`` preprocessor: channel order, scale, mean and resize policy of the published NIN weights.

Two presets cover the two ways the ImageNet NIN has been fed:

- ``caffe`` (the default of imported checkpoints): what the Caffe Model Zoo net was trained and tested
  with: images warped to 256x256, centre crop 224, BGR, 0-255, minus the ImageNet mean (per channel
  [104, 117, 123] BGR, or the ``.binaryproto`` mean image).
- ``modelhub``: what ModelHub serves: RGB 0-255, resized straight to 224x224, no mean subtraction. ModelHub
  drops the mean although the weights were trained with it; that is very likely a bug (docs/pretrained.md).

``prepare_image`` does the geometry on one PIL image and returns uint8 (C, H, W) RGB, as the base class
does: pixels are rounded once after resizing, as OpenCV does on the uint8 images Caffe and MXNet read.
``apply`` then reorders, subtracts the mean and scales a batch, on any device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nin.data.preprocess_base import Preprocessor
from nin.errors import ConfigError

# Per-channel mean of the ILSVRC-2012 training images, BGR, 0-255 (Caffe's ilsvrc_2012_mean, rounded).
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)
PRESETS: dict[str, dict] = {
    "caffe": {
        "order": "bgr",
        "scale": 1.0,
        "mean_mode": "channel",
        "resize": "warp_crop",
        "resize_size": 256,
        "resample": "bilinear",
    },
    "modelhub": {
        "order": "rgb",
        "scale": 1.0,
        "mean_mode": "none",
        "resize": "direct",
        "resize_size": 224,
        "resample": "bilinear",
    },
}
CHOICES = {
    "order": ("rgb", "bgr"),
    "mean_mode": ("none", "channel", "image"),
    "resize": ("direct", "shorter_crop", "warp_crop"),
    "resample": ("bilinear", "lanczos"),
}


class ImageNetPreprocess(Preprocessor):
    """Resize policy + channel order + mean subtraction + scale, as recorded in an imported checkpoint.

    Args:
        preset: ``caffe`` or ``modelhub``; the other arguments override single fields of it.
        order: channel order the network takes (``rgb`` or ``bgr``); images arrive RGB.
        scale: factor applied after the mean is subtracted (1.0 keeps 0-255; 1/255 gives 0-1).
        mean_mode: ``none``, ``channel`` (one value per channel) or ``image`` (a mean image).
        resize: ``direct`` (straight to the input size), ``shorter_crop`` (shorter side to
            ``resize_size``, centre crop) or ``warp_crop`` (to ``resize_size`` square, centre crop).
        resize_size: the intermediate size of the crop policies, in pixels.
        resample: ``bilinear`` (no antialiasing, as OpenCV's INTER_LINEAR) or ``lanczos`` (PIL's).
        mean: mean values (0-255, in ``order``) for ``mean_mode="channel"``; default: ImageNet's.
    """

    name = "imagenet"

    def __init__(
        self,
        preset: str = "caffe",
        order: str | None = None,
        scale: float | None = None,
        mean_mode: str | None = None,
        resize: str | None = None,
        resize_size: int | None = None,
        resample: str | None = None,
        mean: list[float] | None = None,
    ) -> None:
        super().__init__()
        if preset not in PRESETS:
            raise ConfigError(f"unknown imagenet preset {preset!r}; valid: {', '.join(PRESETS)}")
        given = {
            "order": order,
            "scale": scale,
            "mean_mode": mean_mode,
            "resize": resize,
            "resize_size": resize_size,
            "resample": resample,
        }
        opts = {**PRESETS[preset], **{k: v for k, v in given.items() if v is not None}}
        for key, valid in CHOICES.items():
            if opts[key] not in valid:
                raise ConfigError(f"imagenet preprocessing: {key}={opts[key]!r} is not one of {', '.join(valid)}")
        self.preset = preset
        self.order: str = opts["order"]
        self.scale = float(opts["scale"])
        self.mean_mode: str = opts["mean_mode"]
        self.resize: str = opts["resize"]
        self.resize_size = int(opts["resize_size"])
        self.resample: str = opts["resample"]
        if mean is None and self.mean_mode == "channel":
            mean = list(CAFFE_MEAN_BGR if self.order == "bgr" else CAFFE_MEAN_BGR[::-1])
        self.mean = torch.tensor(mean, dtype=torch.float32) if mean is not None else torch.zeros(0)

    def options(self) -> dict:
        return {
            "preset": self.preset,
            "order": self.order,
            "scale": self.scale,
            "mean_mode": self.mean_mode,
            "resize": self.resize,
            "resize_size": self.resize_size,
            "resample": self.resample,
        }

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean}

    def set_mean_image(self, mean: torch.Tensor) -> None:
        """Subtract a mean image (C, H, W), 0-255, in this preprocessor's channel ``order``."""
        if mean.ndim != 3:
            raise ConfigError(f"a mean image must be (C, H, W), not {tuple(mean.shape)}")
        self.load_tensors({"mean": mean.float()})
        self.mean_mode = "image"

    def describe(self) -> str:
        """One line for logs and docs, e.g. ``BGR 0-255, warp 256 + centre crop, minus mean image``."""
        geometry = {
            "direct": "resized to the input size",
            "shorter_crop": f"shorter side {self.resize_size} + centre crop",
            "warp_crop": f"warped to {self.resize_size}x{self.resize_size} + centre crop",
        }[self.resize]
        mean = {"none": "no mean", "channel": f"minus mean {self.mean.tolist()}", "image": "minus mean image"}
        rng = "0-255" if self.scale == 1.0 else f"0-255 x {self.scale:g}"
        return f"{self.order.upper()} {rng}, {geometry} ({self.resample}), {mean[self.mean_mode]}"

    # --- geometry -----------------------------------------------------------------------------
    def prepare_image(self, image, channels: int, size: tuple[int, int]) -> torch.Tensor:
        """One PIL image -> uint8 (C, H, W) RGB at ``size``, by this preprocessor's resize policy."""
        from nin.data.images import to_mode

        img = to_mode(image, channels)
        h, w = size
        if self.resize == "direct":
            return self._resize(img, h, w)
        if self.resize_size < max(h, w):
            raise ConfigError(f"resize_size {self.resize_size} is smaller than the crop {h}x{w}")
        if self.resize == "warp_crop":
            x = self._resize(img, self.resize_size, self.resize_size)
        else:
            short = min(img.width, img.height)
            rh = max(h, round(img.height * self.resize_size / short))
            rw = max(w, round(img.width * self.resize_size / short))
            x = self._resize(img, rh, rw)
        top, left = (x.shape[1] - h) // 2, (x.shape[2] - w) // 2  # Caffe's test-time centre crop
        return x[:, top : top + h, left : left + w].contiguous()

    def _resize(self, img, h: int, w: int) -> torch.Tensor:
        a = np.asarray(img, dtype=np.uint8)
        a = a[:, :, None] if a.ndim == 2 else a
        if (img.height, img.width) == (h, w):
            return torch.from_numpy(a.transpose(2, 0, 1).copy())
        if self.resample == "lanczos":
            from PIL import Image

            b = np.asarray(img.resize((w, h), Image.LANCZOS), dtype=np.uint8)
            b = b[:, :, None] if b.ndim == 2 else b
            return torch.from_numpy(b.transpose(2, 0, 1).copy())
        # OpenCV INTER_LINEAR == interpolate(bilinear, align_corners=False) without antialiasing.
        x = torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32))[None]
        y = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=False)
        return y[0].round().clamp(0, 255).to(torch.uint8)

    # --- values -------------------------------------------------------------------------------
    def _apply(self, x: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        # x: (N, C, H, W) float, RGB, 0-255
        if self.order == "bgr":
            x = x.flip(1)
        if self.mean_mode != "none":
            mean = t["mean"]
            if mean.ndim == 1:
                if mean.numel() != x.shape[1]:
                    raise ConfigError(f"mean has {mean.numel()} values for {x.shape[1]}-channel images")
                x = x - mean.view(1, -1, 1, 1)
            else:
                x = x - _fit_mean_image(mean, x.shape[1], x.shape[2], x.shape[3])
        return x * self.scale if self.scale != 1.0 else x


def _fit_mean_image(mean: torch.Tensor, c: int, h: int, w: int) -> torch.Tensor:
    """A mean image for (h, w) inputs: centre crop of a larger one (as Caffe crops it), else resized."""
    if mean.shape[0] != c:
        raise ConfigError(f"mean image has {mean.shape[0]} channels for {c}-channel images")
    mh, mw = mean.shape[1:]
    if mh >= h and mw >= w:
        top, left = (mh - h) // 2, (mw - w) // 2
        return mean[:, top : top + h, left : left + w]
    return F.interpolate(mean[None], size=(h, w), mode="bilinear", align_corners=False)[0]
