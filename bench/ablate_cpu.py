"""What each fast-path setting buys on this machine, measured interleaved in one process.

    python bench/ablate_cpu.py [--batch-size 128] [--reps 3] [--bf16] [--compile] [--json out.json]

Three parts, each variant run in turn so that the drift of a shared host hits all alike (medians shown):
1. the model step (forward + loss + backward of nin_cifar10): NCHW vs channels_last, 2 vs 1 threads,
   denormals flushed, and optionally bf16 autocast and torch.compile;
2. the optimizer step alone: per-tensor loop vs foreach vs fused SGD;
3. the data path per batch: DataLoader over a TensorDataset + float conversion vs the resident uint8
   tensor with batched augmentation and preprocessing (what ``nin train`` does).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from nin.data.preprocess import build_preprocessor
from nin.data.synthetic import synthetic_dataset
from nin.models import build_model
from nin.train.batches import EpochBatches
from nin.train.distributed import DistContext


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def model_steps(bs: int, reps: int, bf16: bool, compile_: bool) -> dict[str, float]:
    """Median seconds per forward+backward for each variant, variants interleaved."""
    torch.manual_seed(0)
    x = torch.randn(bs, 3, 32, 32)
    y = torch.randint(0, 10, (bs,))
    threads = torch.get_num_threads()

    def make(cl: bool) -> torch.nn.Module:
        torch.manual_seed(0)
        m = build_model("nin_cifar10")
        return m.to(memory_format=torch.channels_last) if cl else m

    nchw, cl = make(False), make(True)
    xc = x.contiguous(memory_format=torch.channels_last)

    def step(m: torch.nn.Module, xx: torch.Tensor, dtype: torch.dtype | None = None) -> None:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            out = m(xx)
        F.cross_entropy(out.float(), y).backward()
        m.zero_grad(set_to_none=True)

    def with_threads(n: int, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            torch.set_num_threads(n)
            try:
                fn()
            finally:
                torch.set_num_threads(threads)

        return run

    def flushed(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            torch.set_flush_denormal(True)
            try:
                fn()
            finally:
                torch.set_flush_denormal(False)

        return run

    variants: dict[str, Callable[[], None]] = {
        "fp32 NCHW": lambda: step(nchw, x),
        "fp32 channels_last": lambda: step(cl, xc),
        "fp32 channels_last, 1 thread": with_threads(1, lambda: step(cl, xc)),
        "fp32 channels_last, denormals flushed": flushed(lambda: step(cl, xc)),
    }
    if bf16:
        variants["bf16 autocast channels_last"] = lambda: step(cl, xc, torch.bfloat16)
    if compile_:
        comp = torch.compile(make(True))
        variants["fp32 channels_last, torch.compile"] = lambda: step(comp, xc)
    for fn in variants.values():  # warm-up (kernel choice, compilation)
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(reps):
        for k, fn in variants.items():
            times[k].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def optimizer_steps(reps: int) -> dict[str, float]:
    """Median seconds per SGD step over nin_cifar10's parameters for each implementation."""
    m = build_model("nin_cifar10").to(memory_format=torch.channels_last)
    for p in m.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    kinds = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    opts = {}
    for name, kw in kinds.items():
        try:
            opts[name] = torch.optim.SGD(m.parameters(), lr=1e-6, momentum=0.9, weight_decay=1e-4, **kw)
            opts[name].step()
        except (RuntimeError, TypeError) as exc:  # fused SGD is missing on some CPU builds
            print(f"  {name} SGD unavailable: {exc}")
            opts.pop(name, None)
    times: dict[str, list[float]] = {k: [] for k in opts}
    for _ in range(reps * 20):
        for k, o in opts.items():
            times[k].append(timed(o.step))
    return {k: statistics.median(v) for k, v in times.items()}


def data_paths(bs: int, reps: int) -> dict[str, float]:
    """Median seconds to produce one float batch ready for the model, per data path."""
    ds = synthetic_dataset((3, 32, 32), 10, bs * 16, seed=1)
    loader = DataLoader(TensorDataset(ds.images, ds.labels), batch_size=bs, shuffle=True, drop_last=True)
    mean = (ds.images.float() / 255).mean(dim=(0, 2, 3), keepdim=True)
    std = (ds.images.float() / 255).std(dim=(0, 2, 3), keepdim=True)
    pre = build_preprocessor("mean_std").fit(ds.images)
    it = iter(loader)

    def textbook() -> None:
        nonlocal it
        try:
            xb, _ = next(it)
        except StopIteration:
            it = iter(loader)
            xb, _ = next(it)
        _ = (xb.float() / 255 - mean) / std

    epoch = [0]
    s = [0]
    batches = EpochBatches(
        ds.images, ds.labels, seed=0, epoch=0, batch_size=bs, translate=2, flip=True, ctx=DistContext()
    )

    def ours() -> None:
        nonlocal batches
        if s[0] == batches.steps:
            epoch[0] += 1
            s[0] = 0
            batches = EpochBatches(
                ds.images, ds.labels, seed=0, epoch=epoch[0], batch_size=bs, translate=2, flip=True, ctx=DistContext()
            )
        xb, _ = batches(s[0])
        s[0] += 1
        _ = pre.apply(xb).contiguous(memory_format=torch.channels_last)

    variants = {"DataLoader + float conversion (no augmentation)": textbook, "resident uint8 + batched aug": ours}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(reps * 20):
        for k, fn in variants.items():
            times[k].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--bf16", action="store_true", help="include bf16 autocast (very slow without native bf16)")
    ap.add_argument("--compile", action="store_true", help="include torch.compile (minutes to compile)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    import os

    load = os.getloadavg()[0]
    print(f"batch {args.batch_size}, {torch.get_num_threads()} threads, load average {load:.2f}")
    res = {"load_avg_start": load, "batch_size": args.batch_size, "threads": torch.get_num_threads()}
    res["model_step_s"] = model_steps(args.batch_size, args.reps, args.bf16, args.compile)
    base = res["model_step_s"]["fp32 NCHW"]
    print("\nforward + backward of nin_cifar10 (median s per step; img/s; vs fp32 NCHW)")
    for k, v in res["model_step_s"].items():
        print(f"  {k:<42} {v:8.3f} s  {args.batch_size / v:7.1f} img/s  {base / v:5.2f}x")
    res["optimizer_step_s"] = optimizer_steps(args.reps)
    print("\nSGD step over nin_cifar10's 967k parameters (median ms)")
    for k, v in res["optimizer_step_s"].items():
        print(f"  {k:<42} {1000 * v:8.2f} ms")
    res["data_batch_s"] = data_paths(args.batch_size, args.reps)
    print(f"\none batch of {args.batch_size} ready for the model (median ms)")
    for k, v in res["data_batch_s"].items():
        print(f"  {k:<48} {1000 * v:8.2f} ms")
    res["load_avg_end"] = os.getloadavg()[0]
    print(f"\nload average at the end {res['load_avg_end']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
