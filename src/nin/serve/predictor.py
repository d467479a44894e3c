"""``Predictor``: a trained (or imported, or exported) NIN behind one call.

The model and its exact preprocessing come from the file alone: input size and channels, the fitted
preprocessor (mean/std, GCN+ZCA, ImageNet mean/BGR ...) and the class names. Every image goes through
``Preprocessor.prepare_image`` (mode conversion and geometry) and then ``Preprocessor.apply`` (normalisation),
the same two calls training and evaluation use.

Example::

    from nin import Predictor
    p = Predictor.from_checkpoint("runs/quickstart/last.pt")
    p.predict("digit.png")                  # Prediction(labels=['7', '1', ...], probabilities=[0.98, ...])
    p.predict([img_a, img_b], top_k=3)      # one Prediction per image
    p.class_maps("digit.png")               # (1, 10, 28, 28): the pre-GAP maps upsampled to the input
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageOps

from nin.data.images import open_image, to_pil
from nin.data.preprocess import Preprocessor, preprocessor_from_state
from nin.errors import ConfigError, DataError
from nin.viz.cam import upsample_map

if TYPE_CHECKING:
    from nin.predict.rows import PredictionRow

ImageLike = str | os.PathLike | bytes | Image.Image | np.ndarray | torch.Tensor


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image, most probable first."""

    labels: list[str]
    probabilities: list[float]
    indices: list[int]

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def probability(self) -> float:
        return self.probabilities[0]

    def to_dict(self) -> dict:
        return {
            "top": [
                {"label": lab, "index": i, "probability": p}
                for lab, i, p in zip(self.labels, self.indices, self.probabilities)
            ]
        }


@dataclass
class ModelInfo:
    """What a served model is: enough to write its ModelHub config and to label its outputs."""

    name: str  # model spec name, e.g. nin_mnist
    classes: list[str]
    input: dict  # {"channels", "height", "width"}
    preprocess: str
    source: str  # file name it was loaded from
    format: str  # "pytorch" | "onnx"
    sha256: str
    train: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    nin_version: str = ""
    extra: dict = field(default_factory=dict)  # anything else the file carries (licence, provenance, ...)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Predictor:
    """A model and its preprocessing, ready to classify images of any kind and mode.

    Build one with :meth:`from_checkpoint` (a ``.pt`` checkpoint or an ``.onnx`` file from ``nin export``).
    """

    def __init__(self, backend, preprocessor: Preprocessor, info: ModelInfo) -> None:
        self.backend = backend
        self.preprocessor = preprocessor
        self.info = info
        self.classes: list[str] = list(info.classes)
        c, h, w = (int(info.input[k]) for k in ("channels", "height", "width"))
        self.input_shape: tuple[int, int, int] = (c, h, w)

    # --- construction -------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: str = "auto", precision: str = "fp32", threads: int = 0
    ) -> Predictor:
        """Rebuild model, preprocessing and class names from a checkpoint (``.pt``) or an export (``.onnx``).

        Args:
            path: a checkpoint written by ``nin train``/``nin import``, or an ``.onnx`` file by ``nin export``.
            device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` (ONNX files always run on the CPU).
            precision: ``fp32`` (default: the same answers on every machine) | ``bf16`` | ``auto`` (bf16 where
                the hardware computes it natively); see :func:`nin.train.runtime.inference_runtime`.
            threads: ONNX Runtime intra-op threads (0 = its default).
        """
        from nin.hub.resolve import resolve_model_file

        path = resolve_model_file(path)  # hf-hub:ORG/NAME and Hub folders -> their model.safetensors
        if path.suffix.lower() == ".onnx":
            return cls.from_onnx(path, threads=threads)
        from nin.train.checkpoint import load_checkpoint

        return cls.from_checkpoint_dict(load_checkpoint(path), device, precision, source=path)

    @classmethod
    def from_checkpoint_dict(
        cls, ckpt: dict, device: str = "auto", precision: str = "fp32", source: Path | None = None
    ) -> Predictor:
        """As :meth:`from_checkpoint`, from a checkpoint dict already in memory."""
        from nin.serve.backends import TorchBackend
        from nin.train.checkpoint import build_from_checkpoint
        from nin.train.runtime import inference_runtime

        runtime = inference_runtime(device, precision)
        pre = preprocessor_from_state(ckpt["preprocess"])
        backend = TorchBackend(build_from_checkpoint(ckpt), pre, runtime)
        known = {"format_version", "kind", "model", "state_dict", "preprocess", "classes", "input", "train"}
        known |= {"metrics", "nin_version", "resume"}
        info = ModelInfo(
            name=ckpt["model"]["name"],
            classes=list(ckpt["classes"]),
            input=dict(ckpt["input"]),
            preprocess=str(ckpt["preprocess"].get("name", "")),
            source=source.name if source else "checkpoint",
            format="pytorch",
            sha256=_sha256(source) if source else "",
            train=dict(ckpt.get("train") or {}),
            metrics=dict(ckpt.get("metrics") or {}),
            nin_version=str(ckpt.get("nin_version", "")),
            extra={k: v for k, v in ckpt.items() if k not in known and isinstance(v, (str, int, float, dict, list))},
        )
        return cls(backend, pre, info)

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, threads: int = 0) -> Predictor:
        """Run an ``.onnx`` file written by ``nin export`` (fp32 or int8) with ONNX Runtime."""
        from nin.serve.backends import OnnxBackend

        path = Path(path)
        backend = OnnxBackend(path, threads=threads)
        meta = backend.meta
        # The graph applies the fitted statistics itself; the host side only needs the recipe's geometry
        # (prepare_image), which depends on its options, not on its tensors.
        pre = preprocessor_from_state({"name": meta["preprocess"]["name"], "options": meta["preprocess"]["options"]})
        info = ModelInfo(
            name=meta["model"]["name"],
            classes=list(meta["classes"]),
            input=dict(meta["input"]),
            preprocess=meta["preprocess"]["name"],
            source=path.name,
            format="onnx",
            sha256=_sha256(path),
            train=dict(meta.get("train") or {}),
            metrics=dict(meta.get("metrics") or {}),
            nin_version=str(meta.get("nin_version", "")),
            extra=dict(meta.get("extra") or {}),
        )
        return cls(backend, pre, info)

    # --- inputs -------------------------------------------------------------------------------------
    @property
    def has_class_maps(self) -> bool:
        return bool(self.backend.has_class_maps)

    def load(self, image: ImageLike) -> Image.Image:
        """One image of any accepted kind -> PIL image (decoded safely, EXIF orientation applied)."""
        if isinstance(image, (str, os.PathLike, bytes, bytearray, io.IOBase)):
            return open_image(image)
        if isinstance(image, Image.Image):
            return ImageOps.exif_transpose(image) if image.getexif().get(0x0112, 1) != 1 else image
        if isinstance(image, (np.ndarray, torch.Tensor)):
            return to_pil(image)
        raise DataError(
            f"cannot read an image from {type(image).__name__}; pass a path, bytes, a PIL image, "
            "a numpy array or a tensor"
        )

    def prepare_one(self, image: ImageLike) -> torch.Tensor:
        """One image -> uint8 (C, H, W) at the model's input size (``prepare_image``, before ``apply``)."""
        c, h, w = self.input_shape
        x = self.preprocessor.prepare_image(self.load(image), c, (h, w))
        if tuple(x.shape) != self.input_shape or x.dtype != torch.uint8:
            raise RuntimeError(f"prepare_image returned {x.dtype} {tuple(x.shape)}, expected uint8 {self.input_shape}")
        return x

    def prepare(self, images: ImageLike | Sequence[ImageLike]) -> tuple[torch.Tensor, bool]:
        """Images -> (uint8 (N, C, H, W), whether a single image was given)."""
        items, single = _as_items(images)
        if not items:
            raise DataError("no images given")
        return torch.stack([self.prepare_one(item) for item in items]), single

    # --- outputs ------------------------------------------------------------------------------------
    def run(self, pixels: torch.Tensor, maps: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The backend on prepared pixels: logits (N, K) and optionally the raw class maps (N, K, h, w).

        Any number of images: they run in the backend's ``batch`` slices (fastest on a CPU, and memory stays bounded).
        """
        step = self.backend.batch
        if pixels.shape[0] <= step:
            return self.backend(pixels, maps)
        parts = [self.backend(pixels[i : i + step], maps) for i in range(0, pixels.shape[0], step)]
        logits = torch.cat([lg for lg, _ in parts])
        return logits, (torch.cat([m for _, m in parts]) if parts[0][1] is not None else None)

    def probabilities(self, images: ImageLike | Sequence[ImageLike]) -> torch.Tensor:
        """Softmax probabilities (N, K) in class order."""
        pixels, _ = self.prepare(images)
        return torch.softmax(self.run(pixels)[0], dim=1)

    def predict(self, images: ImageLike | Sequence[ImageLike], top_k: int = 5) -> Prediction | list[Prediction]:
        """Top-k labels and probabilities: one :class:`Prediction` for one image, a list for several.

        A list or tuple, a 4-D array or a 4-D tensor is a batch; anything else is one image.
        """
        pixels, single = self.prepare(images)
        preds = self.top_k(torch.softmax(self.run(pixels)[0], dim=1), top_k)
        return preds[0] if single else preds

    def top_k(self, probs: torch.Tensor, k: int = 5) -> list[Prediction]:
        """(N, K) probabilities -> one :class:`Prediction` per row."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"top_k must be a positive integer, got {k!r}")
        k = min(k, probs.shape[1])
        values, indices = probs.topk(k, dim=1)
        classes = self.classes
        # One read-back of each (N, k) tensor: a row at a time costs more than the small model's forward.
        return [
            Prediction([classes[i] for i in idx], val, idx)
            for val, idx in zip(values.float().tolist(), indices.tolist(), strict=True)
        ]

    def predict_many(
        self,
        paths: Iterable[str | os.PathLike],
        batch_size: int | None = None,
        workers: int | None = None,
        top_k: int = 5,
        cam_box: bool = False,
    ) -> Iterator[PredictionRow]:
        """Image files in, one :class:`nin.predict.PredictionRow` per file out, in order, as they are ready.

        ``paths`` is streamed (a generator of millions is fine; :func:`nin.predict.expand_inputs` walks folders and
        ``@LIST`` files); files are decoded in ``workers`` processes (``None``: one per core on a CPU; 0: in this
        process) ``batch_size`` at a time (``None``: by the input size). A file that cannot be read gets a row with
        ``error`` set, and the others go on. ``cam_box`` adds the top class's CAM box. See :mod:`nin.predict`.
        """
        from nin.predict.engine import predict_paths

        return predict_paths(self, paths, batch_size=batch_size, workers=workers, top_k=top_k, cam_box=cam_box)

    def class_maps(self, images: ImageLike | Sequence[ImageLike]) -> torch.Tensor:
        """The pre-GAP class maps (paper Fig. 4) upsampled bilinearly to the input: (N, K, H, W)."""
        if not self.has_class_maps:
            raise ConfigError(f"model {self.info.name!r} has a fully connected head and no class maps")
        pixels, _ = self.prepare(images)
        return torch.from_numpy(upsample_map(self.run(pixels, maps=True)[1], self.input_shape[1:]))

    def describe(self) -> str:
        c, h, w = self.input_shape
        return f"{self.info.name} ({len(self.classes)} classes, {c}x{h}x{w}) on {self.backend.describe()}"


def _as_items(images) -> tuple[list, bool]:
    if isinstance(images, (list, tuple)):
        return list(images), False
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
        return list(images), False
    return [images], True
