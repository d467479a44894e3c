"""Prediction under ``torchrun``: which rank takes which batch, and the few messages the ranks exchange.

Each rank takes every ``world``-th chunk of the input (chunk ``c`` goes to rank ``c % world``): a
deterministic shard that needs no count of the input in advance, keeps every rank busy to the end of a
stream, and gives each rank the very batches a single process would run. Only control messages cross ranks
(the run number, "all parts written", the final counts), so the group always uses gloo on the CPU, whatever
device the model runs on.
"""

from __future__ import annotations

import datetime

import torch.distributed as dist

from nin.train import distributed
from nin.train.distributed import DistContext, leave

# Ranks wait for each other only at the end of their shards; one rank can be slowed by a folder of large
# photos, so the wait is allowed to be long.
_GROUP_TIMEOUT = datetime.timedelta(hours=12)


def join_group() -> DistContext:
    """Join the group torchrun describes (``WORLD_SIZE`` > 1), or return the single-process context."""
    return distributed.join_group("gloo", _GROUP_TIMEOUT)


def takes(chunk: int, ctx: DistContext) -> bool:
    """Whether this rank predicts chunk number ``chunk``."""
    return chunk % ctx.world == ctx.rank


def from_main(value, ctx: DistContext):
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not ctx.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wait_all(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def done(ctx: DistContext, *, finished: bool = False) -> None:
    """Leave the group (after a barrier when this rank ``finished``: see :func:`nin.train.distributed.leave`)."""
    leave(ctx, finished=finished)
