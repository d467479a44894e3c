"""The batch loop: decoded chunks through the model, one :class:`PredictionRow` per input file, in input order."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import torch

from nin.errors import ConfigError
from nin.predict.decode import POOLS, DecodedChunk, chunks, decoded_chunks, default_pool, default_workers
from nin.predict.rows import Prediction, PredictionRow


class Predictor(Protocol):
    """What the batch path needs of a :class:`nin.serve.predictor.Predictor`.

    A protocol, like :class:`nin.predict.rows.Prediction`, so that this package imports nothing from ``nin.serve``.
    """

    backend: Any
    preprocessor: Any
    info: Any
    classes: list[str]
    input_shape: tuple[int, int, int]

    @property
    def has_class_maps(self) -> bool: ...

    def prepare_one(self, image: Any) -> torch.Tensor: ...

    def run(self, pixels: torch.Tensor, maps: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    def top_k(self, probs: torch.Tensor, k: int = 5) -> list[Prediction]: ...


def decode_ahead(predictor: Predictor, overlap: bool | None) -> bool:
    """Whether decoding runs beside the model (``overlap``; ``None``: when the model is on a GPU)."""
    if overlap is not None:
        return bool(overlap)
    device = getattr(getattr(predictor.backend, "runtime", None), "device", None)
    return device is not None and device.type == "cuda"


# Pixels of one decoded chunk when the batch size is left to the default: small images get large chunks (the
# per-chunk costs - handing work to the decoders, the model's threads going idle and waking, a part file and
# its fsync - are then spread over many images); photo-sized ones stay at 64.
CHUNK_BYTES = 1 << 21
MIN_BATCH, MAX_BATCH = 64, 512


def default_batch_size(input_shape: tuple[int, int, int]) -> int:
    """Images per decoded chunk (and part file) by default: 512 for 28x28 or 32x32 inputs, 64 for 224x224x3.

    The model still runs the chunk in the backend's own slices (``Predictor.run``: 64 images on a CPU), so on
    a CPU this changes no number: only how many images are decoded, and written, at a time.
    """
    c, h, w = input_shape
    return max(MIN_BATCH, min(MAX_BATCH, CHUNK_BYTES // max(1, c * h * w)))


def resolve_batch_size(predictor: Predictor, batch_size: int | None) -> int:
    """``batch_size``, or :func:`default_batch_size` of the predictor's input when it is ``None``."""
    return default_batch_size(predictor.input_shape) if batch_size is None else batch_size


def resolve_pool(predictor: Predictor, pool: str) -> str:
    """``pool``, or for ``auto`` :func:`nin.predict.decode.default_pool` of the predictor's input."""
    return default_pool(predictor.input_shape) if pool == "auto" else pool


def check_options(
    predictor: Predictor,
    batch_size: int,
    workers: int | None,
    top_k: int,
    cam_box: bool,
    pool: str = "auto",
    overlap: bool | None = None,
) -> int:
    """Validate the batch options (one-line errors); returns the worker count to use."""
    for name, value in (("batch_size", batch_size), ("top_k", top_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if workers is None:
        workers = default_workers(decode_ahead(predictor, overlap))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"workers must be 0 (decode in this process) or more, got {workers!r}")
    if pool not in (*POOLS, "auto"):
        raise ConfigError(f"the decoding pool is one of auto, {', '.join(POOLS)}, got {pool!r}")
    if cam_box and not predictor.has_class_maps:
        raise ConfigError(
            f"--cam-box needs class maps, and model {predictor.info.name!r} has none "
            "(a fully connected head, or an ONNX file exported without them)"
        )
    return workers


def top_class_boxes(
    maps: torch.Tensor, top: list[int], size: tuple[int, int]
) -> list[tuple[int, int, int, int] | None]:
    """The CAM box (CAM paper §4) of each row's top class, in input pixels: maps (N, K, h, w) -> N boxes."""
    from nin.viz.cam import cam_box, upsample_map

    chosen = maps[torch.arange(maps.shape[0]), torch.as_tensor(top, dtype=torch.long)]  # (N, h, w)
    return [cam_box(m) for m in upsample_map(chosen, size)]  # upsampled to (N, H, W) first


def rows_of_chunk(
    predictor: Predictor,
    decoded: DecodedChunk,
    top_k: int,
    cam_box: bool,
    before_forward: Callable[[], None] | None = None,
) -> list[PredictionRow]:
    """One forward pass over the chunk's decoded images; error rows keep their place among the others.

    ``before_forward`` runs right before the model does (see :func:`predict_batches`).
    """
    preds, boxes = [], []
    if before_forward is not None:
        before_forward()
    if decoded.pixels.shape[0]:
        logits, maps = predictor.run(decoded.pixels, maps=cam_box)
        preds = predictor.top_k(torch.softmax(logits, dim=1), top_k)
        if cam_box:
            boxes = top_class_boxes(maps, [p.indices[0] for p in preds], predictor.input_shape[1:])
    good = iter(range(len(preds)))
    out = []
    for index, path, error in zip(decoded.indices, decoded.paths, decoded.errors):
        if error:
            out.append(PredictionRow(index, path, None, error))
        else:
            i = next(good)
            out.append(PredictionRow(index, path, preds[i], "", boxes[i] if boxes else None))
    return out


def host_side(predictor: Predictor) -> Predictor:
    """A backend-less copy of ``predictor`` for decoding workers: preprocessing and input shape, no model."""
    return type(predictor)(None, predictor.preprocessor, predictor.info)


def predict_batches(
    predictor: Predictor,
    items: Iterable[tuple[int, str]],
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    top_k: int = 5,
    cam_box: bool = False,
    pool: str = "auto",
    overlap: bool | None = None,
    jpeg_draft: bool = False,
    before_forward: Callable[[], None] | None = None,
) -> Iterator[list[PredictionRow]]:
    """The rows of ``(index, path)`` pairs (increasing indices, gaps allowed), one list per batch.

    Batches are formed by ``index // batch_size`` (``None``: :func:`default_batch_size`; see
    :func:`nin.predict.decode.chunks`) and decoded by ``workers`` processes or threads (``pool``; ``auto``: by the
    input size, :func:`nin.predict.decode.default_pool`; ``workers`` ``None``: see
    :func:`nin.predict.decode.default_workers`) into reused batch buffers. ``overlap``: decode ahead while the model
    runs (``None``: on a GPU; on a CPU decoding runs between batches, see :mod:`nin.predict.decode`). ``jpeg_draft``:
    decode large JPEGs at a reduced scale (changes pixels; see :mod:`nin.predict.pixels`). ``before_forward``: called
    before each forward pass, after its batch is decoded (the results writer waits there for its previous part, so that
    on a CPU it never runs beside the model). The options are checked here, before the first batch is asked for.
    """
    batch_size = resolve_batch_size(predictor, batch_size)
    workers = check_options(predictor, batch_size, workers, top_k, cam_box, pool, overlap)
    pool = resolve_pool(predictor, pool)
    device = getattr(getattr(predictor.backend, "runtime", None), "device", None)
    gpu = device is not None and device.type == "cuda"
    ahead = decode_ahead(predictor, overlap)

    def batches() -> Iterator[list[PredictionRow]]:
        stream = chunks(items, batch_size)
        decoded = decoded_chunks(
            host_side(predictor),
            stream,
            workers,
            batch_size=batch_size,
            pool=pool,
            overlap=ahead,
            pin_memory=gpu,
            jpeg_draft=jpeg_draft,
        )
        for chunk in decoded:
            yield rows_of_chunk(predictor, chunk, top_k, cam_box, before_forward)

    return batches()


def predict_paths(predictor: Predictor, paths: Iterable[str | os.PathLike], **options) -> Iterator[PredictionRow]:
    """Rows for image paths, in order: the implementation of :meth:`Predictor.predict_many`."""
    batches = predict_batches(predictor, ((i, os.fspath(p)) for i, p in enumerate(paths)), **options)
    return itertools.chain.from_iterable(batches)
