"""Micro-batching: concurrent requests share one forward pass, inference runs off the event loop.

Requests wait in a bounded queue (full -> 503, so an overload sheds requests instead of growing memory).
One consumer takes the oldest request plus every request already waiting (up to ``max_batch``), optionally
waits ``max_wait_ms`` for more, and runs the batch on a single inference thread. With ``max_wait_ms=0`` (the
default) a lone request is never delayed: batches form only from requests that queued while the previous
batch was computing, i.e. exactly when the server is busy and batching pays (see docs/serving.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from nin.errors import RequestError

log = logging.getLogger(__name__)

RunFn = Callable[[torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass
class _Item:
    pixels: torch.Tensor  # uint8 (C, H, W)
    maps: bool
    future: asyncio.Future


class MicroBatcher:
    """Collects single-image requests into batches for ``run(pixels (N, C, H, W), maps) -> (logits, maps)``.

    Args:
        run: the model call (blocking); runs on one dedicated thread.
        max_batch: most images per forward pass (1 disables batching).
        max_wait_ms: how long a batch may wait for company once it has one request (0 = never wait).
        max_queue: requests allowed to wait; one more is refused with HTTP 503.
    """

    def __init__(self, run: RunFn, max_batch: int = 32, max_wait_ms: float = 0.0, max_queue: int = 256) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.run = run
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.batches = 0  # counters, for /readyz and the batching benchmark
        self.images = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nin-infer")
        self._task = asyncio.create_task(self._loop(), name="nin-micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._queue is not None:
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if not item.future.done():
                    item.future.set_exception(RequestError("the server is shutting down", 503))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def call(self, fn: Callable, *args):
        """Run a blocking function on the inference thread (warm-up, one-off calls)."""
        assert self._executor is not None, "MicroBatcher.start() was not awaited"
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def submit(self, pixels: torch.Tensor, maps: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One image (uint8 (C, H, W)) -> its logits (K,) and, if asked, its class maps (K, h, w)."""
        if self._queue is None:
            raise RequestError("the model is not ready yet; retry shortly", 503)
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Item(pixels, maps, future))
        except asyncio.QueueFull:
            raise RequestError(f"the server is busy ({self.max_queue} requests waiting); retry shortly", 503) from None
        return await future

    async def _collect(self) -> list[_Item]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:  # not the builtin TimeoutError on Python 3.10
                break
        return [item for item in batch if not item.future.done()]  # drop requests whose client left

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            pixels = torch.stack([item.pixels for item in batch])  # (N, C, H, W)
            want_maps = any(item.maps for item in batch)
            try:
                logits, maps = await loop.run_in_executor(self._executor, self.run, pixels, want_maps)
            except Exception as exc:  # one failed batch fails its requests, never the loop
                log.exception("inference failed for a batch of %d", len(batch))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.batches += 1
            self.images += len(batch)
            for i, item in enumerate(batch):
                if not item.future.done():
                    item.future.set_result((logits[i], maps[i] if (maps is not None and item.maps) else None))
