"""The machine's measured matrix-multiply peak: the yardstick for "% of peak".

A square GEMM is the best case for any dense kernel on the machine, so GFLOP/s of a convolution net
divided by it says how much of the machine the net's implementation uses. It is measured in the same
process, interleaved with the runs it judges, because a shared host's speed drifts.
"""

from __future__ import annotations

import statistics
import time

import torch


def gemm_gflops(
    device: torch.device, dtype: torch.dtype, size: int, repeats: int = 3, min_time_s: float = 0.2
) -> float:
    """Median GFLOP/s of ``repeats`` timed ``size``-cubed products ``a @ b`` (2 n^3 FLOP each).

    Each timed sample runs as many products as fill ``min_time_s`` (at least one), after one warm-up.
    """
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    torch.mm(a, b)  # warm-up: library initialisation, kernel choice
    sync()
    one = max(time.perf_counter() - t0, 1e-6)
    reps = max(1, int(min_time_s / one))
    samples = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        sync()
        samples.append(2.0 * size**3 * reps / (time.perf_counter() - t0) / 1e9)
    return statistics.median(samples)


def default_gemm_size(device: torch.device, dtype: torch.dtype, quick: bool = False) -> int:
    """Large enough to reach the plateau, small enough to time in about a second."""
    if device.type == "cuda":
        return 2048 if quick else 8192
    if dtype == torch.float32:
        return 512 if quick else 2048
    from nin.train.runtime import cpu_has_native_bf16

    if cpu_has_native_bf16():
        return 512 if quick else 2048
    # Emulated bf16 (no AVX512-BF16/AMX) runs ~50x slower than fp32: a small product keeps it short.
    return 128 if quick else 512
