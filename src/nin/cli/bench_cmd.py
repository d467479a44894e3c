"""``nin bench``: training/eval throughput vs the GEMM peak and a textbook loop, latency, time-to-accuracy,
batch prediction (``--predict DIR``)."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument(
        "--precision",
        default=None,
        choices=("auto", "bf16", "fp32"),
        help="autocast policy (default: auto, as training; --predict: fp32, as nin predict)",
    )
    p.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"), help="memory format policy")
    p.add_argument("--compile", default="auto", choices=("auto", "on", "off"), help="torch.compile (auto: CUDA)")
    p.add_argument("--model", default="nin_cifar10", help="model to time (default: nin_cifar10, 32x32 input)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="training batch (default: 128); with --predict, images per chunk (default: by the input size)",
    )
    p.add_argument("--rounds", type=int, default=5, help="timed blocks per variant (default: 5)")
    p.add_argument("--no-onnx", action="store_true", help="skip ONNX Runtime")
    p.add_argument(
        "--train-run",
        type=int,
        default=None,
        metavar="EPOCHS",
        help="also a short real training run on CIFAR-sized synthetic data (default: 3 epochs on CUDA, none on CPU)",
    )
    p.add_argument(
        "--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice, one per core)"
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs, in seconds")
    p.add_argument(
        "--tta",
        metavar="DATASET",
        default=None,
        help="time-to-accuracy instead: train DATASET's speed recipe until --target (fashion_mnist, or mnist: "
        "the embedded 8k/2k digits); width, epochs and schedule are sized to --budget-min on this machine",
    )
    p.add_argument("--target", type=float, default=None, help="--tta target test accuracy (default: 0.94; mnist 0.993)")
    p.add_argument("--budget-min", type=float, default=None, help="--tta time budget in minutes (default: 15; mnist 1)")
    p.add_argument(
        "--full-schedule",
        action="store_true",
        help="--tta: train the whole planned schedule even after the target is reached (the time it was is kept)",
    )
    p.add_argument("--data-root", default=None, help="--tta: folder of the dataset files")
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="--tta: a fixed one-cycle schedule of this many epochs (default: sized to the budget)",
    )
    p.add_argument(
        "--predict",
        metavar="DIR",
        default=None,
        help="batch prediction instead: `nin predict DIR --out` vs the bare batched forward vs a per-image loop",
    )
    p.add_argument("--checkpoint", default=None, help="--predict: the model (default: untrained NIN-MNIST + BN)")
    p.add_argument(
        "--write-digits",
        type=int,
        default=0,
        metavar="N",
        help="--predict: first write N embedded MNIST digits (PNG, nested folders) and two broken files into DIR",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="--predict: decoding processes or threads (default: one per core)"
    )
    p.add_argument(
        "--variants",
        default="processes,threads",
        help="--predict: batch-path variants: processes, threads, main, overlap, threads_overlap, draft (default: "
        "processes,threads); the headline is the one nin predict picks for the folder's model, else the first",
    )
    p.add_argument(
        "--photos",
        metavar="DIR",
        default=None,
        help="--predict: also a folder of large JPEGs through an untrained ImageNet NIN (224x224, Caffe preprocessing)",
    )
    p.add_argument(
        "--write-photos",
        type=int,
        default=0,
        metavar="N",
        help="--predict: first write N photo-like JPEGs (--photo-size) and two broken files into --photos DIR",
    )
    p.add_argument("--photo-size", default="500x375", help="--predict: WxH of --write-photos (default: 500x375)")
    p.add_argument(
        "--photo-batch-size", type=int, default=None, help="--predict: chunk for --photos (default: by the input size)"
    )
    p.add_argument("--loop-limit", type=int, default=0, help="--predict: files for the per-image loop (0: all)")
    p.add_argument("--out", default=None, help="also write the JSON result to this file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run(args: argparse.Namespace) -> int:
    from nin.errors import ConfigError

    if (args.batch_size is not None and args.batch_size <= 0) or args.rounds <= 0 or args.threads < 0:
        raise ConfigError("--batch-size and --rounds must be > 0, --threads >= 0")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.predict is not None:
        result, text = _predict_bench(args)
    elif args.tta is not None:
        from nin.bench.tta import TTAOptions, format_tta, run_tta

        result = run_tta(
            TTAOptions(
                dataset=args.tta,
                target=args.target,
                budget_s=None if args.budget_min is None else 60.0 * args.budget_min,
                data_root=args.data_root,
                device=args.device,
                epochs=args.epochs,
                stop_at_target=not args.full_schedule,
                quick=args.quick,
            )
        )
        text = format_tta(result)
    else:
        from nin.bench import BenchOptions, run_bench
        from nin.bench.report import format_table
        from nin.train.runtime import resolve_device

        train_run = args.train_run
        if train_run is None:
            train_run = 3 if resolve_device(args.device).type == "cuda" else 0
        kw = dict(
            device=args.device,
            precision=args.precision or "auto",
            channels_last=args.channels_last,
            compile=args.compile,
            model=args.model,
            onnx=not args.no_onnx,
            train_run_epochs=train_run,
        )
        if args.quick:
            opts = BenchOptions.quick_options(**kw)
        else:
            opts = BenchOptions(batch_size=args.batch_size or 128, rounds=args.rounds, **kw)
        result = run_bench(opts)
        text = format_table(result)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    print(json.dumps(result) if args.json else text)
    sys.stdout.flush()
    return 0


def _predict_bench(args: argparse.Namespace) -> tuple[dict, str]:
    from nin.bench.predict import (
        PredictBenchOptions,
        format_predict,
        run_predict_bench,
        write_digit_folder,
        write_photo_folder,
    )
    from nin.errors import ConfigError

    try:
        size = tuple(int(v) for v in args.photo_size.lower().split("x"))
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"--photo-size {args.photo_size}: write it WIDTHxHEIGHT, e.g. 500x375")
    if args.write_photos and args.photos is None:
        raise ConfigError("--write-photos needs --photos DIR, the folder to write them into")
    if args.write_digits:
        write_digit_folder(args.predict, args.write_digits)
    if args.write_photos:
        write_photo_folder(args.photos, args.write_photos, size)
    opts = PredictBenchOptions(
        folder=args.predict,
        checkpoint=args.checkpoint,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        precision=args.precision or "fp32",
        rounds=args.rounds,
        loop_limit=args.loop_limit,
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        photos=args.photos,
        photo_batch_size=args.photo_batch_size,
    )
    result = run_predict_bench(opts)
    return result, format_predict(result)
