"""Training throughput: our training loop against a textbook loop, interleaved block by block.

"Ours" is the real :func:`nin.train.train` with default runtime settings. The textbook baseline is how
most public ports train: fp32, NCHW, eager, a ``DataLoader`` over a ``TensorDataset``, and a transfer
plus float conversion of every batch. Both train the same network at the same batch size. They run in one
process, alternating in blocks of steps (1 step on the CPU, 50 on a GPU) with GEMM-peak samples in
between, so the drift of a shared host's speed hits all of them alike; the figures are medians.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from nin.data.dataset import Dataset
from nin.models import build_model
from nin.train.batches import EpochBatches
from nin.train.config import TrainConfig
from nin.train.distributed import DistContext
from nin.train.engine import forward_backward, train
from nin.train.prepare import model_options, prepare
from nin.train.runtime import Runtime


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TextbookLoop:
    """The baseline: the training loop of a typical public port (fp32, NCHW, eager, DataLoader).

    Augmentation is left out (it would be per-image Python in such a port), which flatters the baseline.
    """

    def __init__(self, cfg: TrainConfig, train_ds: Dataset, device: torch.device) -> None:
        self.device = device
        torch.manual_seed(0)
        self.model = build_model(cfg.model, **model_options(cfg, len(train_ds.classes), train_ds.shape[0]))
        self.model.to(device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=cfg.weight_decay)
        self.loader = DataLoader(
            TensorDataset(train_ds.images, train_ds.labels), batch_size=cfg.batch_size, shuffle=True, drop_last=True
        )
        x = train_ds.images.float() / 255
        self.mean = x.mean(dim=(0, 2, 3), keepdim=True).to(device)
        self.std = x.std(dim=(0, 2, 3), keepdim=True).to(device)
        self._it = iter(self.loader)
        self.last_loss = float("nan")

    def step(self) -> None:
        try:
            x, y = next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            x, y = next(self._it)
        x = (x.to(self.device).float() / 255 - self.mean) / self.std
        y = y.to(self.device)
        self.model.train()
        loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.last_loss = loss.item()  # what such loops log every step


class PhaseTimer:
    """Our training step, instrumented: data (gather, augment, preprocess), model (forward, loss,
    backward) and optimizer (schedule, step), timed separately with a device sync between phases."""

    def __init__(self, cfg: TrainConfig, train_ds: Dataset, rt: Runtime) -> None:
        self.cfg, self.rt = cfg, rt
        # The parts of a real run (model, compiled step, optimiser, fitted preprocessing, schedule), built as
        # nin train builds them; nothing is read from or written to the (unused) run folder of a fresh run.
        p, _, _ = prepare(cfg, Path("."), False, rt, DistContext(), (train_ds, train_ds))
        self.model, self.step_model, self.opt, self.pre, self.schedule = (
            p.model,
            p.step_model,
            p.optimizer,
            p.pre,
            p.schedule,
        )
        self.batches = EpochBatches(
            p.images,
            p.labels,
            seed=cfg.seed,
            epoch=0,
            batch_size=cfg.batch_size,
            translate=cfg.translate,
            flip=cfg.flip,
            ctx=DistContext(),
            ahead=rt.augment_ahead,
        )
        self.s = 0
        self.times: dict[str, list[float]] = {"data": [], "model": [], "optimizer": []}

    def step(self, record: bool = True) -> None:
        rt, dev = self.rt, self.rt.device
        sync(dev)
        t0 = time.perf_counter()
        xb, y = self.batches(self.s % self.batches.steps)
        x = self.pre.apply(xb).contiguous(memory_format=rt.memory_format)
        sync(dev)
        t1 = time.perf_counter()
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        forward_backward(self.step_model, x, y, rt, self.cfg.label_smoothing)
        sync(dev)
        t2 = time.perf_counter()
        self.schedule.apply(self.opt, self.s)
        self.opt.step()
        sync(dev)
        t3 = time.perf_counter()
        self.s += 1
        if record:
            for k, v in (("data", t1 - t0), ("model", t2 - t1), ("optimizer", t3 - t2)):
                self.times[k].append(v)

    def shares(self) -> dict[str, float]:
        med = {k: statistics.median(v) for k, v in self.times.items() if v}
        total = sum(med.values()) or 1.0
        return {k: v / total for k, v in med.items()}


@dataclass
class TrainSpeed:
    ours_step_s: list[float] = field(default_factory=list)
    textbook_step_s: list[float] = field(default_factory=list)
    gemm: dict[str, list[float]] = field(default_factory=dict)
    phase_shares: dict[str, float] = field(default_factory=dict)
    phase_ms: dict[str, float] = field(default_factory=dict)

    def img_s(self, batch: int) -> tuple[float, float]:
        return batch / statistics.median(self.ours_step_s), batch / statistics.median(self.textbook_step_s)


def measure_training(
    cfg: TrainConfig,
    data: tuple[Dataset, Dataset],
    rt: Runtime,
    *,
    rounds: int,
    block: int,
    between: Callable[[], None] | None = None,
) -> TrainSpeed:
    """Run ``rounds`` timed blocks of ``block`` steps of ours, the textbook loop and the phase timer, in turn.

    The first block of each serves as warm-up (kernel selection, compilation) and is not timed.
    ``between`` (e.g. a GEMM-peak sample) runs once per round, outside every timed block.
    """
    out = TrainSpeed()
    book = TextbookLoop(cfg, data[0], rt.device)
    phases = PhaseTimer(cfg, data[0], rt)
    resumed: list[float] = []

    def hook(step: int) -> None:
        if step % block:
            return
        sync(rt.device)
        now = time.perf_counter()
        warm = not resumed
        if not warm:
            out.ours_step_s.append((now - resumed[-1]) / block)
        sync(rt.device)
        t0 = time.perf_counter()
        for _ in range(block):
            book.step()
        sync(rt.device)
        if not warm:
            out.textbook_step_s.append((time.perf_counter() - t0) / block)
        for _ in range(block if rt.device.type == "cuda" else 1):
            phases.step(record=not warm)
        if between is not None and not warm:
            between()
        resumed.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        train(
            cfg.replace(max_steps=block * (rounds + 1)),
            out_dir=tmp,
            progress=False,
            runtime=rt,
            data=data,
            on_step=hook,
        )
    out.phase_shares = phases.shares()
    out.phase_ms = {k: 1000 * statistics.median(v) for k, v in phases.times.items() if v}
    return out
