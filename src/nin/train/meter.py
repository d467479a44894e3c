"""Per-step training statistics kept on the device and read back in batches.

Reading a GPU scalar (``loss.item()``) makes the host wait for every queued kernel, so the loop would
stop overlapping Python with GPU work. The meter keeps each step's loss and correct count on the device
and reads them back every ``sync_every`` steps (every step on the CPU, where reading costs nothing). Across
processes it sums them over ranks in the same read, so every rank sees the loss of the global batch and
takes the same decisions (divergence, stall).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nin.train.distributed import DistContext, all_reduce_sum


@dataclass
class StepRecord:
    """One optimiser step as read back: its position and the global batch's mean loss."""

    step_in_epoch: int
    global_step: int
    loss: float


class StepMeter:
    """Collects (loss, correct) per step; :meth:`flush` returns the steps since the last flush.

    Args:
        acc: the epoch's running sums ``{"loss", "correct", "seen"}`` (updated in place on flush).
        ctx: the data-parallel context (sums are taken over ranks).
        sync_every: steps between read-backs.
        global_batch: images per step over all ranks.
    """

    def __init__(self, acc: dict, ctx: DistContext, sync_every: int, global_batch: int) -> None:
        self.acc = acc
        self.ctx = ctx
        self.sync_every = max(1, sync_every)
        self.global_batch = global_batch
        self._losses: list[torch.Tensor] = []
        self._where: list[tuple[int, int]] = []
        self._correct: torch.Tensor | None = None
        self._max_logit: torch.Tensor | None = None

    def add(
        self,
        step_in_epoch: int,
        global_step: int,
        loss: torch.Tensor,
        logits: torch.Tensor,
        y: torch.Tensor,
        *,
        watch_logits: bool = False,
    ) -> None:
        """Record a step (no host sync). ``watch_logits`` keeps max |logit| for the stall detector."""
        self._losses.append(loss.detach().float())
        self._where.append((step_in_epoch, global_step))
        correct = (logits.detach().argmax(1) == y).sum()
        self._correct = correct if self._correct is None else self._correct + correct
        if watch_logits:
            self._max_logit = logits.detach().abs().amax().float()

    @property
    def due(self) -> bool:
        return len(self._losses) >= self.sync_every

    def flush(self) -> tuple[list[StepRecord], float | None]:
        """Read back (and sum over ranks) the pending steps; returns them and the last max |logit|.

        Updates ``acc`` with the global sums.
        """
        if not self._losses:
            return [], None
        assert self._correct is not None
        extra = [self._correct.to(torch.float64)]
        if self._max_logit is not None:
            extra.append(self._max_logit.to(torch.float64))
        values = torch.stack([*(v.to(torch.float64) for v in self._losses), *extra])
        values = all_reduce_sum(values, self.ctx).tolist()
        k, world = len(self._losses), self.ctx.world
        losses = [v / world for v in values[:k]]  # each rank's loss is its slice's mean; slices are equal
        records = [StepRecord(s, g, v) for (s, g), v in zip(self._where, losses)]
        for v in losses:
            self.acc["loss"] += v * self.global_batch
        self.acc["correct"] += int(values[k])
        self.acc["seen"] += k * self.global_batch
        max_logit = values[k + 1] if self._max_logit is not None else None
        self._losses, self._where, self._correct, self._max_logit = [], [], None, None
        return records, max_logit
