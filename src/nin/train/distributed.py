"""Data-parallel training over several processes (PyTorch DDP): joining the group, sharding, reductions.

Launch with ``torchrun --nproc-per-node N -m nin train ...``: torchrun sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, and :func:`join` connects the processes (gloo on
CPU, NCCL on CUDA, one GPU per process).

Batch-size semantics: the config's ``batch_size`` is the **global** batch. Every rank draws the same
seeded permutation and the same per-step augmentation of the whole global batch, then trains on its own
contiguous slice of ``batch_size // world`` images; DDP averages the gradients. A step therefore equals a
single process stepping on the whole batch (up to the order of float sums), except for two documented
differences: batch norm normalises with per-rank batch statistics (plain DDP; SyncBatchNorm needs CUDA),
and each rank draws its own dropout masks.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from nin.errors import ConfigError
from nin.train.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the group; ``world == 1`` is a plain single-process run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this context created the process group and must destroy it

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs, shows progress and writes files."""
        return self.rank == 0


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def join_group(backend: str, timeout: datetime.timedelta, cuda: bool = False) -> DistContext:
    """Join the group torchrun describes (``WORLD_SIZE`` > 1) or the one already running; else one process.

    ``cuda``: first make ``cuda:LOCAL_RANK`` this process's GPU (before NCCL starts).
    """
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local)
    if env_world_size() <= 1:
        return DistContext()
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run one process")
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group(backend, timeout=timeout)
    return DistContext(dist.get_rank(), dist.get_world_size(), local, owns_group=True)


def join(rt: Runtime, batch_size: int) -> tuple[DistContext, Runtime]:
    """Join the training group (NCCL on CUDA, gloo on the CPU); see :func:`join_group`.

    Returns the context and the runtime moved to this process's GPU (``cuda:LOCAL_RANK``) where needed.
    """
    cuda = rt.device.type == "cuda"
    ctx = join_group("nccl" if cuda else "gloo", datetime.timedelta(minutes=30), cuda=cuda)
    if not ctx.enabled:
        return ctx, rt
    if batch_size % ctx.world:
        leave(ctx)
        raise ConfigError(
            f"batch_size={batch_size} is the global batch and must divide evenly over {ctx.world} processes; "
            f"use a multiple of {ctx.world}"
        )
    if rt.device.type == "cuda" and rt.device.index is None:
        rt = dataclasses.replace(rt, device=torch.device("cuda", ctx.local_rank))
    if ctx.is_main:
        log.info("data parallel: %d processes, %d images per process per step", ctx.world, batch_size // ctx.world)
    return ctx, rt


def leave(ctx: DistContext, *, finished: bool = False) -> None:
    """Destroy the process group if :func:`join` created it.

    After a run that ``finished`` on this rank, first wait for every rank at a barrier, so that no rank tears down
    gloo's connections and worker threads while a peer still has collectives in flight over them. After a failure
    there is no barrier: the peers may be gone, and the error is what matters.
    """
    if ctx.owns_group and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def local_slice(batch: int, ctx: DistContext) -> slice:
    """This rank's contiguous part of a global batch of ``batch`` items."""
    per = batch // ctx.world
    return slice(ctx.rank * per, (ctx.rank + 1) * per)


def shard(n: int, ctx: DistContext) -> slice:
    """This rank's contiguous part of ``n`` items when they need not split evenly (evaluation)."""
    bounds = [n * r // ctx.world for r in range(ctx.world + 1)]
    return slice(bounds[ctx.rank], bounds[ctx.rank + 1])


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``t`` over ranks in place (a no-op in a single process)."""
    if ctx.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def wrap(model: nn.Module, ctx: DistContext, rt: Runtime) -> nn.Module:
    """Wrap in DDP across the group (parameters are broadcast from rank 0), or return as is."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [rt.device.index] if rt.device.type == "cuda" else None
    # 1x1 convolutions get gradients whose strides differ from the bucket's only along size-1 dims: the
    # same memory layout, so DDP's "may impair performance" warning is a false alarm for them.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    # gradient_as_bucket_view: gradients alias the all-reduce buckets (one copy fewer per step).
    return DDP(model, device_ids=ids, gradient_as_bucket_view=True)


def combine_eval(metrics: dict, ctx: DistContext, device: torch.device) -> dict:
    """Merge per-shard :func:`nin.train.evaluate.evaluate` results into the metrics of the whole set."""
    if not ctx.enabled:
        return metrics
    n = metrics["n"]
    ok = n > 0
    sums = torch.tensor(
        [metrics["loss"] * n if ok else 0.0, round(metrics["accuracy"] * n) if ok else 0.0, float(n)],
        dtype=torch.float64,
        device=device,
    )
    loss_sum, correct, total = all_reduce_sum(sums, ctx).tolist()
    if total == 0:
        return metrics
    acc = correct / total
    return {"loss": loss_sum / total, "accuracy": acc, "error_pct": 100.0 * (1.0 - acc), "n": int(total)}
