"""``nin bench`` as a script: ``python bench/bench.py [--json] [--device cuda] [--tta fashion_mnist] ...``.

Prints the throughput table (ours vs the textbook loop, % of the measured GEMM peak, eval speed and
latency, share of step time outside the model); ``--help`` lists every option.
"""

import sys

from nin.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
