"""Benchmarks that print what they measured: training and evaluation speed against the machine's GEMM
peak and a textbook baseline (:func:`run_bench`), and time-to-accuracy (:mod:`nin.bench.tta`)."""

from nin.bench.runner import BenchOptions, run_bench

__all__ = ["BenchOptions", "run_bench"]
