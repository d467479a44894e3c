"""The library behind ``nin bench``: training and evaluation speed against the machine's GEMM peak and a
textbook baseline (:func:`run_bench`), and time-to-accuracy (:mod:`nin.bench.tta`).

Not to be confused with the repository's top-level ``bench/`` folder: scripts run from a checkout
(``python bench/int8.py ...``), not installed with the package, that print measurements of their own (CPU
fast paths, int8, serving under load) by calling this package, :mod:`nin.export` and :mod:`nin.serve`.
"""

from nin.bench.runner import BenchOptions, run_bench

__all__ = ["BenchOptions", "run_bench"]
