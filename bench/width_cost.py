"""Training-step time of NIN-MNIST widths on this machine, relative to the first one given.

    python bench/width_cost.py [--batch 128[,64,...]] [--rounds 7] 48-32-24,64-48-24,64-48:5,5,5 72-48-36,96-72-36,96-72

Each argument is a net: three blocks of widths (the last stops before the class maps) and three kernel sizes.
Several batch sizes time every net at each of them; compare them by `image_ms`, the step time per image.
All nets are built first (BN, He init, channels_last, Nesterov SGD as the time-to-accuracy recipe trains them,
bf16 autocast where this CPU has native bf16), then timed in interleaved rounds of 8 steps after 3 untimed
ones, so that a change in the machine's speed hits every net alike; prints the median per net as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from nin.models.family import NetSpec, paper_blocks
from nin.train.runtime import machine_info, select_runtime


def _net(arg: str):
    widths, _, kernels = arg.partition(":")
    blocks = tuple(tuple(int(c) for c in b.split("-")) for b in widths.split(","))
    ks = tuple(int(k) for k in (kernels or "5,5,5").split(","))
    spec = NetSpec(arg, paper_blocks(blocks, ks), input_size=(28, 28), in_channels=1)
    torch.manual_seed(0)
    return spec.build(num_classes=10, in_channels=1, dropout=0.0, batch_norm=True, init="kaiming")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("nets", nargs="+")
    ap.add_argument(
        "--batch",
        type=lambda s: [int(b) for b in s.split(",")],
        default=[128],
        help="a batch size, or several separated by commas",
    )
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    rt = select_runtime("cpu")
    batches = args.batch
    data = {
        b: (torch.randn(b, 1, 28, 28).contiguous(memory_format=rt.memory_format), torch.randint(0, 10, (b,)))
        for b in batches
    }
    runs = []
    for arg in args.nets:
        for b in batches:
            model = _net(arg).to(memory_format=rt.memory_format)
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
            runs.append((arg, b, model, opt, []))

    def step(model, opt, x, y) -> None:
        with rt.autocast():
            out = model(x)
        loss = F.cross_entropy(out.float(), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.rounds):
        for _, b, model, opt, times in runs:
            x, y = data[b]
            for _ in range(3):
                step(model, opt, x, y)
            t = time.perf_counter()
            for _ in range(8):
                step(model, opt, x, y)
            times.append((time.perf_counter() - t) / 8)
    base = statistics.median(runs[0][4]) / runs[0][1]
    for arg, b, model, _, times in runs:
        med = statistics.median(times)
        params = sum(p.numel() for p in model.parameters())
        row = {
            "net": arg,
            "batch": b,
            "params_with_bn": params,
            "step_ms": round(1e3 * med, 1),
            "image_ms": round(1e3 * med / b, 3),
            "vs_first": round(med / b / base, 2),
        }
        print(json.dumps(row))
    print(json.dumps({"machine": machine_info(), "precision": rt.precision, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
