"""The preprocessing an imported checkpoint records: an ImageNet preset with the right channel order and mean."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from nin.data.imagenet_preprocess import PRESETS, ImageNetPreprocess
from nin.data.preprocess import Preprocessor, build_preprocessor
from nin.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def read_mean(path: str | Path) -> tuple[np.ndarray, str]:
    """A mean image (C, H, W) and its channel order: Caffe ``.binaryproto`` (BGR) or MXNet ``.nd`` (RGB)."""
    from nin.interop.caffe import read_mean_binaryproto
    from nin.interop.mxnet_params import read_params

    if Path(path).suffix.lower() in (".nd", ".params"):
        arrays, _ = read_params(path)
        if len(arrays) != 1:
            raise DataError(f"{path} holds {len(arrays)} arrays; a mean file holds one (C, H, W) image")
        a = next(iter(arrays.values())).astype(np.float32)
        a = a[0] if a.ndim == 4 and a.shape[0] == 1 else a
        if a.ndim != 3 or a.shape[0] not in (1, 3):
            raise DataError(f"{path}: a mean image must be (C, H, W), not {a.shape}")
        return a, "rgb"  # MXNet's Caffe converter writes its mean.nd in RGB
    return read_mean_binaryproto(path), "bgr"


def preprocessor_for_import(
    model_name: str,
    preprocess: str | None,
    network_order: str,
    mean: str | Path | None = None,
    transform: dict | None = None,
    fit_dataset: str | None = None,
    data_root: str | None = None,
) -> Preprocessor:
    """The preprocessor an imported checkpoint records.

    ImageNet: a preset of :class:`~nin.data.imagenet_preprocess.ImageNetPreprocess` (``caffe`` by default, or
    ``modelhub``) feeding ``network_order``; a mean file replaces the per-channel mean. Other nets: any
    registered preprocessor (default ``none``), fit on ``fit_dataset`` when it needs statistics.
    """
    if model_name == "nin_imagenet":
        preset = preprocess or "caffe"
        if preset not in PRESETS:
            raise ConfigError(f"--preprocess for nin_imagenet is one of {', '.join(PRESETS)}, not {preset!r}")
        transform = transform or {}
        kwargs: dict = {"order": network_order}
        if transform.get("scale") is not None:
            kwargs["scale"] = float(transform["scale"])
        if transform.get("mean_value"):
            values = list(transform["mean_value"])  # Caffe's values are BGR
            kwargs.update(mean_mode="channel", mean=values if network_order == "bgr" else values[::-1])
        pre = ImageNetPreprocess(preset, **kwargs)
        if mean is not None:
            image, order = read_mean(mean)
            if order != network_order and image.shape[0] == 3:
                image = image[::-1]
            pre.set_mean_image(torch.from_numpy(np.ascontiguousarray(image)))
        if transform.get("mean_file") and mean is None:
            log.warning(
                "the prototxt subtracts mean file %s: pass it with --mean for exact results", transform["mean_file"]
            )
        return pre
    if mean is not None:
        raise ConfigError("--mean applies to nin_imagenet only; the CIFAR-10 net was trained on whitened images")
    pre = build_preprocessor(preprocess or "none")
    if pre.needs_fit:
        if not fit_dataset:
            raise ConfigError(f"preprocessing {pre.name!r} needs statistics: pass --fit-dataset NAME (and --data-root)")
        from nin.data.registry import load_dataset

        pre.fit(load_dataset(fit_dataset, "train", data_root).images)
    elif model_name.startswith("nin_cifar10") and preprocess is None:
        log.warning(
            "the Caffe NIN-CIFAR10 net was trained on GCN + ZCA-whitened images; recording no preprocessing. "
            "Pass --preprocess gcn_zca --fit-dataset cifar10 to record the whitening"
        )
    return pre
