"""Decoding workers, processes or threads, that write files into the slots of a shared ring of batch tensors.

Both pools take the same two calls: ``submit(slot, start, paths)`` (decode ``paths`` into rows ``start...`` of
ring slot ``slot``) and ``result()`` (the ``(slot, start, errors)`` of a finished piece, in the order they
finish). Only paths and error strings cross between processes; the pixels are written into shared memory the
main process allocated, and read there without a copy.

A worker process that dies (killed, or a crash in a decoder library) ends the run with an error instead of
leaving the main process waiting. Worker processes ignore Ctrl-C: the main process handles it and stops them.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import torch

from nin.predict.pixels import decode_into

_CRASH = -1  # the slot number of a message that reports a worker's failure


class Pool(Protocol):
    def submit(self, slot: int, start: int, paths: list[str]) -> None: ...

    def result(self) -> tuple[int, int, list[str]]: ...


def _decode_piece(host, ring, draft, slot: int, start: int, paths: list[str]) -> tuple[int, int, list[str]]:
    target = ring[slot]
    return slot, start, [decode_into(host, p, target[start + j], draft) for j, p in enumerate(paths)]


class ThreadPool:
    """``n`` threads of this process (Pillow's decoders and torch's resize run without the GIL)."""

    def __init__(self, n: int, host, ring: list[torch.Tensor], draft) -> None:
        self._args = (host, ring, draft)
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._executor = ThreadPoolExecutor(max_workers=n, thread_name_prefix="nin-decode")

    def _run(self, slot: int, start: int, paths: list[str]) -> None:
        try:
            self._done.put(_decode_piece(*self._args, slot, start, paths))
        except BaseException as exc:  # decode_into turns file errors into rows; this is the thread itself failing
            self._done.put((_CRASH, 0, [f"a decoding thread failed: {type(exc).__name__}: {exc}"]))

    def submit(self, slot: int, start: int, paths: list[str]) -> None:
        self._executor.submit(self._run, slot, start, paths)

    def result(self) -> tuple[int, int, list[str]]:
        return _checked(self._done.get())

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


PARENT_CHECK_S = 0.5  # how often a worker process looks whether the process that started it is still there


def _exit_with(parent: int) -> None:
    """End this worker once ``parent`` is gone (killed with SIGKILL, say): nothing else would ever wake it."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)


def _process_main(host, ring, draft, tasks, done, parent: int) -> None:
    """A worker process: one torch thread (a resize must not spread over the model's cores), Ctrl-C ignored.

    It also leaves when the main process dies without stopping it: a ``daemon`` process is stopped only by a
    parent that exits normally, and a worker blocked on the task queue (whose write end it holds too) would wait
    there for ever, holding its memory.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(parent,), name="nin-decode-parent", daemon=True).start()
    torch.set_num_threads(1)
    try:
        while (task := tasks.get()) is not None:
            done.put(_decode_piece(host, ring, draft, *task))
    except BaseException as exc:
        done.put((_CRASH, 0, [f"a decoding process failed: {type(exc).__name__}: {exc}"]))


class ProcessPool:
    """``n`` processes (the platform's default start method, as PyTorch's DataLoader) writing into shared memory."""

    def __init__(self, n: int, host, ring: list[torch.Tensor], draft) -> None:
        import torch.multiprocessing as mp  # registers the reductions that send shared tensors to spawned children

        ctx = mp.get_context()
        self._tasks = ctx.SimpleQueue()
        self._done = ctx.Queue()
        self._procs = [
            ctx.Process(
                target=_process_main,
                args=(host, ring, draft, self._tasks, self._done, os.getpid()),
                name=f"nin-decode-{i}",
                daemon=True,
            )
            for i in range(n)
        ]
        for p in self._procs:
            p.start()

    def submit(self, slot: int, start: int, paths: list[str]) -> None:
        self._tasks.put((slot, start, paths))

    def result(self) -> tuple[int, int, list[str]]:
        while True:
            try:
                return _checked(self._done.get(timeout=1.0))
            except queue.Empty:
                dead = [p for p in self._procs if not p.is_alive()]
                if dead:
                    raise RuntimeError(
                        f"decoding process {dead[0].name} ended (exit code {dead[0].exitcode}); "
                        "run again (with --resume to keep what was written), or with --workers 0"
                    ) from None

    def close(self) -> None:
        for p in self._procs:
            if p.is_alive():
                try:
                    self._tasks.put(None)
                except (OSError, ValueError):
                    break
        for p in self._procs:
            p.join(timeout=2.0)
            if p.is_alive():
                p.terminate()
                p.join(timeout=2.0)
        self._done.cancel_join_thread()
        self._done.close()


def _checked(item: tuple[int, int, list[str]]) -> tuple[int, int, list[str]]:
    if item[0] == _CRASH:
        raise RuntimeError(item[2][0])
    return item


class _Closing:
    def __init__(self, pool) -> None:
        self.pool = pool

    def __enter__(self):
        return self.pool

    def __exit__(self, *exc) -> None:
        self.pool.close()


def make_pool(kind: str, n: int, host, ring: list[torch.Tensor], draft) -> _Closing:
    """A pool of ``n`` ``processes`` or ``threads`` as a context manager that stops them on the way out."""
    if kind == "threads":
        return _Closing(ThreadPool(n, host, ring, draft))
    if kind == "processes":
        return _Closing(ProcessPool(n, host, ring, draft))
    raise ValueError(f"unknown decoding pool {kind!r}")
