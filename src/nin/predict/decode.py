"""Decoding: chunks of paths in, uint8 batches (pre-allocated, reused) and per-file errors out, in input order.

The main process streams ``(index, path)`` pairs and groups them into chunks of one batch each (:func:`chunks`).
Each chunk is decoded straight into a slot of a small ring of batch tensors allocated once (shared memory for
worker processes, page-locked for a CUDA device): no tensor per image, no stacking, no batch copied between
processes. Workers (:mod:`nin.predict.pool`) are processes (the default for small inputs: a small PNG's decode is mostly
Python, which threads would run one at a time) or threads (the default for photo-sized inputs: Pillow and torch
release the GIL while they decode and resize; see :func:`default_pool`, measured in docs/batch-predict.md).

When decoding runs, and on which cores, is the ``overlap`` choice:

- ``overlap=False`` (the default on a CPU): decoding runs between forward passes, spread over the workers (one
  per core by default). On a CPU the model's threads already use every core; decoding between its batches
  never makes a decoder and a model thread share a core (on a 2-core machine both schedules measured the
  same: docs/batch-predict.md).
- ``overlap=True`` (the default on a GPU): the workers decode ``prefetch`` chunks ahead while the model runs.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from nin.predict.pixels import decode_into, describe_failure, draft_size
from nin.predict.pool import Pool, make_pool

__all__ = ["Chunk", "DecodedChunk", "chunks", "decoded_chunks", "default_workers", "describe_failure"]

POOLS = ("processes", "threads")
# Inputs of at least this many pixel values decode in threads by default (``pool="auto"``): a photo's decode and
# resize run in Pillow and torch without the GIL, and threads spare the processes' start and hand-offs; a small
# image's decode is mostly Python, which threads would run one at a time (docs/batch-predict.md).
THREADS_FROM = 3 * 96 * 96


def default_pool(input_shape: tuple[int, int, int]) -> str:
    """``processes`` for small inputs (28x28, 32x32), ``threads`` for photo-sized ones (96x96x3 and up)."""
    c, h, w = input_shape
    return "threads" if c * h * w >= THREADS_FROM else "processes"


@dataclass
class Chunk:
    """One batch worth of inputs: ``number`` counts chunks from the start of the input (see ``chunks``)."""

    number: int
    indices: list[int]
    paths: list[str]


@dataclass
class DecodedChunk:
    """A chunk after decoding: the images that decoded, in one batch, and an error message for each that did not.

    ``pixels`` is a view of a reused batch buffer: it holds this chunk's images until the next chunk is asked for.
    """

    number: int
    indices: list[int]
    paths: list[str]
    pixels: torch.Tensor  # uint8 (n_ok, C, H, W), the files whose error is "" in order
    errors: list[str]  # one per path; "" when the file decoded


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


def default_workers(overlap: bool = False) -> int:
    """Decoding workers by default: one per core between batches; one per core but one beside the model; 1 to 8."""
    return max(1, min(8, (os.cpu_count() or 2) - (1 if overlap else 0)))


def _finish(chunk: Chunk, slot: torch.Tensor, errors: list[str]) -> DecodedChunk:
    """The chunk's decoded images as one batch: the slot's first rows, or (only when some failed) the good ones."""
    n = len(chunk.paths)
    ok = [j for j, e in enumerate(errors) if not e]
    pixels = slot[:n] if len(ok) == n else slot[torch.tensor(ok, dtype=torch.long)]
    return DecodedChunk(chunk.number, chunk.indices, chunk.paths, pixels, errors)


def _pieces(n: int, parts: int) -> list[tuple[int, int]]:
    """``n`` items cut into at most ``parts`` contiguous ``(start, stop)`` pieces of (nearly) equal size."""
    parts = max(1, min(parts, n))
    step, extra = divmod(n, parts)
    out, start = [], 0
    for p in range(parts):
        stop = start + step + (p < extra)
        out.append((start, stop))
        start = stop
    return out


def decoded_chunks(
    host,
    stream: Iterable[Chunk],
    workers: int,
    *,
    batch_size: int,
    pool: str = "processes",
    overlap: bool = False,
    pin_memory: bool = False,
    prefetch: int = 2,
    jpeg_draft: bool = False,
) -> Iterator[DecodedChunk]:
    """Decode chunks (at most ``batch_size`` paths each) in input order.

    Args:
        host: a backend-less Predictor (its preprocessing and input shape; see ``engine.host_side``).
        stream: the chunks, consumed lazily.
        workers: decoding processes or threads (0: the main thread decodes, alone).
        batch_size: the largest chunk: the size of the batch buffers.
        pool: ``processes`` or ``threads``.
        overlap: decode ahead while the model runs (``prefetch`` chunks), instead of between its batches.
        pin_memory: page-locked buffers, for a faster copy to a CUDA device (in-process decoding only).
        prefetch: with ``overlap``, chunks decoded ahead.
        jpeg_draft: let libjpeg decode large JPEGs at a reduced scale (see :mod:`nin.predict.pixels`).
    """
    c, h, w = host.input_shape
    draft = draft_size(host.preprocessor, host.input_shape) if jpeg_draft else None
    overlap = overlap and workers > 0
    slots = prefetch + 1 if overlap else 1
    shared = workers > 0 and pool == "processes"
    pin = pin_memory and not shared and torch.cuda.is_available()
    ring = [torch.empty((batch_size, c, h, w), dtype=torch.uint8, pin_memory=pin) for _ in range(slots)]
    if shared:
        ring = [t.share_memory_() for t in ring]
    it = iter(stream)
    first = next(it, None)
    if first is None:  # nothing to do (say, a resumed run that is complete): no workers started
        return
    it = itertools.chain([first], it)
    if workers == 0:
        for chunk in it:
            errors = [decode_into(host, p, ring[0][j], draft) for j, p in enumerate(chunk.paths)]
            yield _finish(chunk, ring[0], errors)
        return
    with make_pool(pool, workers, host, ring, draft) as workers_pool:
        if overlap:
            yield from _ahead(workers_pool, it, ring)
        else:
            yield from _between(workers_pool, it, ring, workers)


def _between(pool: Pool, it: Iterator[Chunk], ring: list[torch.Tensor], workers: int):
    """Each chunk split over the workers, decoded while the model waits, so that decoding has every core.

    The main thread only waits: its torch operations (the ImageNet recipe resizes with torch) would run on the
    model's thread pool, whose threads then wait on each other at every operation while the workers hold the
    cores (measured 10x slower per photo on a busy machine).
    """
    slot = ring[0]
    for chunk in it:
        errors = [""] * len(chunk.paths)
        pieces = _pieces(len(chunk.paths), workers)
        for start, stop in pieces:
            pool.submit(0, start, chunk.paths[start:stop])
        for _ in pieces:
            _, start, errs = pool.result()
            errors[start : start + len(errs)] = errs
        yield _finish(chunk, slot, errors)


def _ahead(pool: Pool, it: Iterator[Chunk], ring: list[torch.Tensor]):
    """Whole chunks to the workers, up to ``len(ring) - 1`` ahead of the one the model runs; yielded in order."""
    queued: list[tuple[Chunk, int]] = []  # in input order
    done: dict[int, list[str]] = {}  # slot -> errors of a finished chunk
    free = list(range(len(ring)))
    exhausted = False
    while True:
        while free and not exhausted:
            chunk = next(it, None)
            if chunk is None:
                exhausted = True
                break
            slot = free.pop(0)
            queued.append((chunk, slot))
            pool.submit(slot, 0, chunk.paths)
        if not queued:
            return
        chunk, slot = queued.pop(0)
        while slot not in done:
            s, _, errs = pool.result()
            done[s] = errs
        yield _finish(chunk, ring[slot], done.pop(slot))
        free.append(slot)  # the model is done with the slot once the next chunk is asked for
