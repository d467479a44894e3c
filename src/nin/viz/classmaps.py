"""NIN's category confidence maps (paper §3.2, Fig. 4) as arrays: one map per class, pooled into the logits.

The model's ``forward_features`` returns the maps (B, K, h, w) and ``forward_head`` averages them (GAP),
so the map of the predicted class is where the network "sees" that class — the class activation map of
Zhou et al. 2016 with identity weights. :class:`ClassMapper` runs on a :class:`nin.serve.predictor.Predictor`,
so an image is opened, turned upright (EXIF), decoded and preprocessed exactly as ``nin predict`` does it,
and returns :class:`ClassMaps` records; figures live in :mod:`nin.viz.figures`.

Example (a notebook)::

    from nin.viz import ClassMapper
    mapper = ClassMapper.from_checkpoint("runs/quickstart/best.pt")
    result = mapper.explain_files(["digit.png"])[0]
    result.pred_name, result.maps.shape      # '7', (10, 7, 7)
    result.overlay(box=True)                 # RGB uint8 array of the input's size
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nin.errors import ConfigError, DataError
from nin.serve.predictor import ImageLike, Predictor
from nin.viz.cam import as_rgb, cam_overlay, upscale_image

log = logging.getLogger(__name__)


@dataclass
class ClassMaps:
    """The class maps of one input and what they pool to.

    Attributes:
        image: the model's input as RGB uint8 (H, W, 3), after decoding and resizing (before normalisation).
        maps: the category confidence maps (K, h, w), float32.
        logits: the pooled scores (K,), equal to ``maps.mean((1, 2))`` for a GAP model.
        classes: class names, index = class.
        label: the true class when known (dataset items), else ``None``.
        name: what the input was (a file name or ``dataset:split[index]``).
    """

    image: np.ndarray
    maps: np.ndarray
    logits: np.ndarray
    classes: tuple[str, ...]
    label: int | None = None
    name: str = ""

    @property
    def probs(self) -> np.ndarray:
        """Softmax of the logits (K,)."""
        z = self.logits.astype(np.float64) - float(self.logits.max())
        e = np.exp(z)
        return (e / e.sum()).astype(np.float32)

    @property
    def pred(self) -> int:
        """The predicted class (highest pooled score)."""
        return int(self.logits.argmax())

    @property
    def pred_name(self) -> str:
        return self.classes[self.pred]

    @property
    def correct(self) -> bool | None:
        """Whether the prediction is the true class; ``None`` when the label is unknown."""
        return None if self.label is None else self.pred == self.label

    def top(self, k: int) -> list[int]:
        """The ``k`` classes with the highest scores, best first."""
        k = max(1, min(int(k), len(self.logits)))
        return [int(i) for i in np.argsort(-self.logits, kind="stable")[:k]]

    def overlay(
        self, cls: int | None = None, alpha: float = 0.5, cmap: str = "jet", box: bool = False, min_side: int = 0
    ) -> np.ndarray:
        """CAM overlay of class ``cls`` (default: the predicted class) on the input, RGB uint8.

        The result has the input's size, or an integer multiple of it with ``min_side`` (see
        :func:`nin.viz.cam.upscale_image`): small digits then get a smooth heat map.
        """
        c = self.pred if cls is None else int(cls)
        return cam_overlay(upscale_image(self.image, min_side), self.maps[c], alpha=alpha, cmap=cmap, box=box)


class ClassMapper:
    """A :class:`~nin.serve.predictor.Predictor` whose model has class maps, ready to explain images.

    Args:
        predictor: a checkpoint (or an ONNX export with a ``class_maps`` output) behind a Predictor; a model
            with a fully connected head (the Table 5 / §4.6 ablations) raises ``ConfigError``.
    """

    def __init__(self, predictor: Predictor) -> None:
        if not predictor.has_class_maps:
            raise ConfigError(
                f"model {predictor.info.name!r} has a fully connected head, so it has no class maps (paper Table 5 "
                "/ §4.6 ablation); class maps and CAM need a global-average-pooling model such as nin_mnist or "
                "nin_cifar10"
            )
        self.predictor = predictor
        self.classes = tuple(str(c) for c in predictor.classes)
        self.input_shape = predictor.input_shape

    @classmethod
    def from_checkpoint(
        cls, checkpoint: str | os.PathLike | dict, device: str = "cpu", precision: str = "fp32"
    ) -> ClassMapper:
        """A checkpoint file (``.pt`` or ``.onnx``) or an already loaded checkpoint dict, as ``nin predict`` loads it.

        ``precision`` defaults to fp32: the maps are then exact whatever the CPU (see ``select_runtime``).
        """
        if isinstance(checkpoint, dict):
            return cls(Predictor.from_checkpoint_dict(checkpoint, device, precision))
        return cls(Predictor.from_checkpoint(checkpoint, device, precision))

    def prepare(self, image: ImageLike) -> torch.Tensor:
        """One image (a path, bytes, PIL image, array) -> uint8 (C, H, W) at the model's input size."""
        return self.predictor.prepare_one(image)

    def explain(
        self,
        images: torch.Tensor,
        labels: Sequence[int] | torch.Tensor | None = None,
        names: Sequence[str] | None = None,
    ) -> list[ClassMaps]:
        """Class maps of uint8 images (N, C, H, W) in the model's input shape.

        Args:
            images: uint8 tensor (N, C, H, W), e.g. ``Dataset.images[idx]`` or stacked :meth:`prepare` outputs.
            labels: true classes, when known (drawn framed in the figures).
            names: one caption per image.
        """
        if images.ndim == 3:
            images = images[None]
        if tuple(images.shape[1:]) != self.input_shape:
            raise DataError(f"images are {tuple(images.shape[1:])} but the model takes {self.input_shape}")
        n = images.shape[0]
        if n == 0:
            raise DataError("no images to explain")
        labels_list = [None] * n if labels is None else [int(v) for v in torch.as_tensor(labels).reshape(-1)]
        names_list = list(names) if names is not None else [f"#{i}" for i in range(n)]
        if len(labels_list) != n or len(names_list) != n:
            raise ValueError(f"{n} images but {len(labels_list)} labels and {len(names_list)} names")
        logits, maps = self.predictor.run(images, maps=True)  # in slices: see Predictor.run
        return [
            ClassMaps(
                as_rgb(images[i].cpu()),
                maps[i].numpy(),
                logits[i].numpy(),
                self.classes,
                labels_list[i],
                names_list[i],
            )
            for i in range(n)
        ]

    def explain_files(self, paths: Sequence[str | os.PathLike]) -> list[ClassMaps]:
        """Class maps of image files, opened and decoded as ``nin predict`` opens them (EXIF orientation applied)."""
        if not paths:
            raise DataError("no image files given")
        x = torch.stack([self.prepare(p) for p in paths])
        return self.explain(x, names=[Path(p).name for p in paths])

    def _check_dataset(self, dataset) -> None:
        if tuple(dataset.shape) != self.input_shape:
            raise DataError(f"{dataset.name} images are {dataset.shape} but the model takes {self.input_shape}")

    def explain_dataset(self, dataset, index: Sequence[int]) -> list[ClassMaps]:
        """Class maps of items ``index`` of a :class:`nin.data.dataset.Dataset`, with their true classes."""
        n = len(dataset)
        bad = [i for i in index if not -n <= int(i) < n]
        if bad:
            raise DataError(f"{dataset.name} has {n} images; index {bad[0]} is out of range")
        self._check_dataset(dataset)
        if tuple(dataset.classes) != self.classes:
            log.warning("%s has other class names than the checkpoint; showing the checkpoint's", dataset.name)
        idx = torch.as_tensor([int(i) % n for i in index], dtype=torch.int64)
        split = dataset.name.rsplit(":", 1)[-1]  # "mnist_embedded:test" -> "test[17]": short captions
        return self.explain(dataset.images[idx], dataset.labels[idx], [f"{split}[{int(i)}]" for i in idx.tolist()])

    def misclassified(self, dataset) -> list[int]:
        """Indices of the items of ``dataset`` the model gets wrong, in order."""
        self._check_dataset(dataset)
        logits, _ = self.predictor.run(dataset.images)
        return (logits.argmax(1) != dataset.labels).nonzero()[:, 0].tolist()
