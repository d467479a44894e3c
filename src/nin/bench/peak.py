"""The machine's measured matrix-multiply peak: the yardstick for "% of peak".

A square GEMM is the best case for any dense kernel on the machine, so GFLOP/s of a convolution net
divided by it says how much of the machine the net's implementation uses. It is measured in the same
process, interleaved with the runs it judges, because a shared host's speed drifts.
"""

from __future__ import annotations

import statistics
import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Gemm:
    """Square ``size``-cubed products ``a @ b`` (2 n^3 FLOP each) of one dtype on one device."""

    def __init__(self, device: torch.device, dtype: torch.dtype, size: int, min_time_s: float = 0.2) -> None:
        g = torch.Generator(device="cpu").manual_seed(0)
        self.a = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
        self.b = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
        self.device, self.size, self.min_time_s = device, size, min_time_s
        self.reps = 0  # products per timed sample, sized on first use

    def _time(self, reps: int) -> float:
        _sync(self.device)
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(self.a, self.b)
        _sync(self.device)
        return time.perf_counter() - t0

    def sample(self) -> float:
        """GFLOP/s of one timed sample (the first call also warms up and sizes the sample)."""
        if not self.reps:
            self._time(1)  # library initialisation, kernel choice
            self.reps = max(1, int(self.min_time_s / max(self._time(1), 1e-6)))
        return 2.0 * self.size**3 * self.reps / self._time(self.reps) / 1e9


def gemm_gflops(
    device: torch.device, dtype: torch.dtype, size: int, repeats: int = 3, min_time_s: float = 0.2
) -> float:
    """Median GFLOP/s of ``repeats`` timed samples of ``size``-cubed products (after a warm-up)."""
    gemm = Gemm(device, dtype, size, min_time_s)
    return statistics.median(gemm.sample() for _ in range(repeats))


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
