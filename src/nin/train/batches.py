"""Which images each step trains on: the seeded shuffle, batched augmentation and this rank's slice.

Everything a step draws comes from ``step_seed(seed, epoch, step)`` alone, so a run resumed mid-epoch, or
split over several processes, sees exactly the batches of an uninterrupted single-process run.
"""

from __future__ import annotations

import numpy as np
import torch

from nin.data.augment import augment
from nin.train.distributed import DistContext, local_slice


def step_seed(seed: int, epoch: int, step: int) -> int:
    """A 63-bit seed for one (epoch, step); step -1 is the epoch's shuffle."""
    return int(np.random.SeedSequence([seed, epoch, step + 1]).generate_state(1, np.uint64)[0] >> 1)


class EpochBatches:
    """The augmented uint8 batches of one epoch, as this rank sees them.

    Args:
        images, labels: the whole training set, resident on the training device.
        seed, epoch: the run's seed and the epoch (0-based).
        batch_size: the global batch; this rank keeps its slice of every augmented global batch.
        translate, flip, cutout: augmentation (:func:`nin.data.augment.augment`).
        ctx: the data-parallel context.
        ahead: steps augmented together. The augmentation draws its random numbers on the CPU and copies
            them to the device; on a GPU every such copy waits for the queued work, so preparing many
            steps at once leaves one pause per ``ahead`` steps instead of several per step.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        seed: int,
        epoch: int,
        batch_size: int,
        translate: int,
        flip: bool,
        ctx: DistContext,
        ahead: int = 1,
        cutout: int = 0,
    ) -> None:
        self.images, self.labels = images, labels
        self.seed, self.epoch, self.bs = seed, epoch, batch_size
        self.translate, self.flip, self.cutout = translate, flip, cutout
        self.part = local_slice(batch_size, ctx)
        self.steps = images.shape[0] // batch_size  # drop_last
        self.augments = translate > 0 or flip or cutout > 0
        self.ahead = max(1, ahead) if self.augments else 1  # without random draws nothing waits
        g = torch.Generator().manual_seed(step_seed(seed, epoch, -1))
        self.perm = torch.randperm(images.shape[0], generator=g).to(images.device)
        self._ready: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _make(self, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.perm[s * self.bs : (s + 1) * self.bs]
        if not self.augments:
            mine = idx[self.part]
            return self.images[mine], self.labels[mine]
        g = torch.Generator().manual_seed(step_seed(self.seed, self.epoch, s))
        # Augment the whole global batch with the step's generator, then keep this rank's slice: the
        # random offsets are drawn per global batch, so every rank sees the single-process augmentation.
        x = augment(self.images[idx], self.translate, self.flip, g, self.cutout)
        return x[self.part], self.labels[idx[self.part]]

    def __call__(self, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Step ``s``'s (uint8 images (b, C, H, W), int64 labels (b,)) for this rank."""
        if s not in self._ready:
            self._ready = {t: self._make(t) for t in range(s, min(s + self.ahead, self.steps))}
        return self._ready.pop(s)
