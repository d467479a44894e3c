"""Decoding in worker processes: chunks of paths in, stacked uint8 batches and per-file errors out.

The main process streams ``(index, path)`` pairs, groups them into chunks of one batch each and hands the
chunks to a :class:`torch.utils.data.DataLoader` as its "sampler": the loader keeps ``prefetch_factor``
chunks per worker in flight and returns the decoded batches in order, so the model is fed whole batches
that were decoded while it ran the previous ones. Memory stays flat: only the chunks in flight exist.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from nin.errors import NinError


@dataclass
class Chunk:
    """One batch worth of inputs: ``number`` counts chunks from the start of the input (see ``chunks``)."""

    number: int
    indices: list[int]
    paths: list[str]


@dataclass
class DecodedChunk:
    """A chunk after decoding: the images that decoded, stacked, and an error message for each that did not."""

    number: int
    indices: list[int]
    paths: list[str]
    pixels: torch.Tensor  # uint8 (n_ok, C, H, W), the files whose error is "" in order
    errors: list[str]  # one per path; "" when the file decoded

    def pin_memory(self) -> DecodedChunk:
        """Called by the loader's pinning thread (``pin_memory=True``): page-lock the pixels."""
        self.pixels = self.pixels.pin_memory()
        return self


def chunks(items: Iterable[tuple[int, str]], size: int) -> Iterator[Chunk]:
    """Group ``(index, path)`` pairs into chunks by ``index // size``.

    Chunk boundaries depend on the input index alone, not on which items were skipped, so a resumed run (or
    another rank) feeds the model exactly the batches an uninterrupted run would: the same numbers come out.
    """
    current: Chunk | None = None
    for index, path in items:
        number = index // size
        if current is not None and current.number != number:
            yield current
            current = None
        if current is None:
            current = Chunk(number, [], [])
        current.indices.append(index)
        current.paths.append(path)
    if current is not None:
        yield current


def _describe_failure(path: str, exc: Exception) -> str:
    """One line for an error row: why this file has no prediction."""
    if not os.path.lexists(path):
        return f"{path} does not exist"
    if os.path.isdir(path):
        return f"{path} is a folder, not an image file"
    if isinstance(exc, NinError):
        return str(exc)
    return f"{path}: {type(exc).__name__}: {exc}".splitlines()[0]


class ChunkDecoder(Dataset):
    """Decodes a :class:`Chunk` with a predictor's host side (``Predictor.prepare_one``: safe decode + geometry).

    ``host`` is a :class:`nin.serve.predictor.Predictor` without a backend, so pickling it to spawned workers
    sends the preprocessing recipe, never the model.
    """

    def __init__(self, host) -> None:
        self.host = host

    def __getitem__(self, chunk: Chunk) -> DecodedChunk:
        images, errors = [], []
        for path in chunk.paths:
            try:
                images.append(self.host.prepare_one(path))
                errors.append("")
            # One bad file must not end a run over a million: whatever decoding raises becomes its error row.
            except Exception as exc:
                errors.append(_describe_failure(path, exc))
        c, h, w = self.host.input_shape
        pixels = torch.stack(images) if images else torch.empty((0, c, h, w), dtype=torch.uint8)
        return DecodedChunk(chunk.number, chunk.indices, chunk.paths, pixels, errors)

    def __len__(self) -> int:  # pragma: no cover - the loader is driven by its sampler, never by len()
        raise TypeError("ChunkDecoder has no length: it decodes the chunks its sampler streams")


def _as_is(decoded: DecodedChunk) -> DecodedChunk:
    return decoded


def default_workers() -> int:
    """Decoding processes by default: one core is left to the model, at least one worker, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def decoded_chunks(
    host, stream: Iterable[Chunk], workers: int, pin_memory: bool = False, prefetch: int = 4
) -> Iterator[DecodedChunk]:
    """Decode chunks in ``workers`` processes (0: in this process), in input order.

    Args:
        host: a backend-less Predictor (see :class:`ChunkDecoder`).
        stream: the chunks, consumed lazily as workers free up.
        workers: decoding processes.
        pin_memory: page-locked batches for a faster copy to a CUDA device.
        prefetch: chunks queued per worker; enough that a worker never idles while the model runs.
    """
    kw = {"num_workers": workers, "pin_memory": pin_memory, "batch_size": None, "collate_fn": _as_is}
    if workers > 0:
        kw["prefetch_factor"] = prefetch
    loader = DataLoader(ChunkDecoder(host), sampler=stream, **kw)
    yield from loader
