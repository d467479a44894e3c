"""NIN's category confidence maps (paper §3.2, Fig. 4) as arrays: one map per class, pooled into the logits.

The model's ``forward_features`` returns the maps (B, K, h, w) and ``forward_head`` averages them (GAP),
so the map of the predicted class is where the network "sees" that class — the class activation map of
Zhou et al. 2016 with identity weights. This module loads a checkpoint, decodes images through the
checkpoint's own preprocessor and returns :class:`ClassMaps` records; figures live in
:mod:`nin.viz.figures`.

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from nin.data.preprocess import Preprocessor
from nin.errors import ConfigError, DataError

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
    meta: dict = field(default_factory=dict)

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
        from nin.viz.cam import cam_overlay, upscale_image

        c = self.pred if cls is None else int(cls)
        return cam_overlay(upscale_image(self.image, min_side), self.maps[c], alpha=alpha, cmap=cmap, box=box)


def require_class_maps(model: nn.Module, what: str = "this model") -> None:
    """Raise a clear ``ConfigError`` for models without class maps (the FC-head ablations)."""
    if not getattr(model, "has_class_maps", True):
        raise ConfigError(
            f"{what} has a fully connected head, so it has no class maps (paper Table 5 / §4.6 ablation); "
            "class maps and CAM need a global-average-pooling model such as nin_mnist or nin_cifar10"
        )


@torch.inference_mode()
def compute_class_maps(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Class maps and pooled logits of preprocessed inputs.

    Args:
        model: a NIN-family model (``forward_features`` -> maps, ``forward_head`` -> GAP).
        x: float inputs (N, C, H, W), already through the checkpoint's preprocessor.
        batch_size: images per forward pass.

    Returns:
        ``(maps, logits)``: float32 CPU tensors (N, K, h, w) and (N, K).
    """
    require_class_maps(model)
    model.eval()
    maps, logits = [], []
    for i in range(0, x.shape[0], batch_size):
        m = model.forward_features(x[i : i + batch_size])  # (B, K, h, w)
        logits.append(model.forward_head(m).float().cpu())  # (B, K)
        maps.append(m.float().cpu())
    if not maps:
        raise ValueError("no images given")
    return torch.cat(maps), torch.cat(logits)


def load_image(path: str | os.PathLike):
    """Open an image file with PIL (any mode); unreadable files raise ``DataError``."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"image {path} does not exist")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path} is not an image PIL can read ({exc})") from None
    return img


class ClassMapper:
    """A checkpoint's model, preprocessor and class names, ready to compute class maps.

    Args:
        model: the model (a GAP model: ``has_class_maps`` must not be False).
        preprocessor: the checkpoint's fitted preprocessor (one implementation for train and explain).
        classes: class names.
        input_shape: (C, H, W) the model takes.
        device: where the forward passes run.
    """

    def __init__(
        self,
        model: nn.Module,
        preprocessor: Preprocessor,
        classes: Sequence[str],
        input_shape: tuple[int, int, int],
        device: str | torch.device = "cpu",
        name: str = "model",
    ) -> None:
        require_class_maps(model, name)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.pre = preprocessor
        self.classes = tuple(str(c) for c in classes)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.name = name

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike | dict, device: str = "cpu") -> ClassMapper:
        """Rebuild from a checkpoint file (or an already loaded checkpoint dict)."""
        from nin.data.preprocess import preprocessor_from_state
        from nin.train.checkpoint import build_from_checkpoint, load_checkpoint
        from nin.train.runtime import resolve_device

        ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
        name = ckpt["model"]["name"]
        model = build_from_checkpoint(ckpt)
        require_class_maps(model, f"model {name!r}")
        inp = ckpt["input"]
        return cls(
            model,
            preprocessor_from_state(ckpt["preprocess"]),
            ckpt["classes"],
            (inp["channels"], inp["height"], inp["width"]),
            resolve_device(device),
            name,
        )

    def prepare(self, image) -> torch.Tensor:
        """A PIL image (any mode) or a path -> uint8 (C, H, W) at the model's input size."""
        if isinstance(image, (str, os.PathLike)):
            image = load_image(image)
        c, h, w = self.input_shape
        return self.pre.prepare_image(image, c, (h, w))

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
        parts = [  # preprocess chunk by chunk: a whole split in float32 may not fit where uint8 does
            compute_class_maps(self.model, self.pre.apply(images[i : i + 256].to(self.device)))
            for i in range(0, n, 256)
        ]
        maps, logits = torch.cat([m for m, _ in parts]), torch.cat([z for _, z in parts])
        labels_list = [None] * n if labels is None else [int(v) for v in torch.as_tensor(labels).reshape(-1)]
        names_list = list(names) if names is not None else [f"#{i}" for i in range(n)]
        if len(labels_list) != n or len(names_list) != n:
            raise ValueError(f"{n} images but {len(labels_list)} labels and {len(names_list)} names")
        from nin.viz.cam import as_rgb

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
        """Class maps of image files (any PIL mode), decoded as the checkpoint's preprocessor decodes them."""
        if not paths:
            raise DataError("no image files given")
        x = torch.stack([self.prepare(p) for p in paths])
        return self.explain(x, names=[Path(p).name for p in paths])

    def explain_dataset(self, dataset, index: Sequence[int]) -> list[ClassMaps]:
        """Class maps of items ``index`` of a :class:`nin.data.dataset.Dataset`, with their true classes."""
        n = len(dataset)
        bad = [i for i in index if not -n <= int(i) < n]
        if bad:
            raise DataError(f"{dataset.name} has {n} images; index {bad[0]} is out of range")
        if tuple(dataset.shape) != self.input_shape:
            raise DataError(f"{dataset.name} images are {dataset.shape} but the model takes {self.input_shape}")
        if tuple(dataset.classes) != self.classes:
            log.warning("%s has other class names than the checkpoint; showing the checkpoint's", dataset.name)
        idx = torch.as_tensor([int(i) % n for i in index], dtype=torch.int64)
        split = dataset.name.rsplit(":", 1)[-1]  # "mnist_embedded:test" -> "test[17]": short captions
        return self.explain(dataset.images[idx], dataset.labels[idx], [f"{split}[{int(i)}]" for i in idx.tolist()])
