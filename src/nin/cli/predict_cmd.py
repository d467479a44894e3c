"""``nin predict CHECKPOINT PATH...``: classify image files, folders and ``@LIST`` files with a checkpoint or export.

Without ``--out`` the results are printed as they come (a top-k table per image, or ``--json``); with
``--out FILE`` (``.csv``, ``.jsonl``, ``.parquet``) they go to one row per file, atomically per batch,
``--resume``-able, and sharded over the processes of ``torchrun``. See docs/batch-predict.md.

Exit status: 0 every file was classified; 1 the run finished but some rows are errors (unreadable or
undecodable files, paths that do not exist); 2 a usage or configuration error (bad option, unreadable model,
``--out`` exists without ``--resume``/``--overwrite``): nothing was predicted; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from nin.cli.options import add_precision

EXIT_ROWS_FAILED = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "exit status: 0 every file classified; 1 finished, but some rows are errors (see the error column); "
        "2 usage or configuration error, nothing predicted. Details: docs/batch-predict.md"
    )
    p.add_argument(
        "checkpoint",
        type=Path,
        help="a .pt or .safetensors checkpoint, a Hub folder, hf-hub:ORG/NAME[@REV], or an .onnx file (fp32 or int8)",
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="image files, folders (walked recursively, image files only, sorted), or @LIST (a text file of "
        "image paths, one per line; @- reads them from standard input)",
    )
    p.add_argument("--out", type=Path, default=None, help="write one row per file to a .csv, .jsonl or .parquet file")
    p.add_argument("--top-k", type=int, default=5, help="classes per image (default: 5)")
    p.add_argument("--json", action="store_true", help="without --out: print one JSON object")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_precision(p)
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images decoded and written at a time (default: by the input size, 512 for 28x28, 64 for 224x224)",
    )
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: one per core; 0: none)")
    p.add_argument(
        "--decode",
        default="auto",
        choices=("auto", "processes", "threads"),
        help="what the --workers are (default auto: processes for small inputs, threads for photo-sized ones)",
    )
    p.add_argument(
        "--jpeg-draft",
        action="store_true",
        help="decode large JPEGs at 1/2-1/8 scale first (faster; pixels differ from the model's preprocessing)",
    )
    p.add_argument("--threads", type=int, default=0, help="CPU threads for the model (default: one per core)")
    p.add_argument("--cam-box", action="store_true", help="add the top class's CAM box (cam_left ... cam_bottom)")
    p.add_argument("--resume", action="store_true", help="with --out: predict only the files not yet in it")
    p.add_argument("--overwrite", action="store_true", help="with --out: replace an existing file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _bar(p: float, width: int = 24) -> str:
    n = round(p * width)
    return "█" * n + "·" * (width - n)


def _load(args: argparse.Namespace, ctx):
    from nin.errors import ConfigError
    from nin.serve.predictor import Predictor
    from nin.train.runtime import resolve_device

    if args.threads < 0:
        raise ConfigError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    device = args.device
    if ctx.enabled and resolve_device(device).type == "cuda" and ":" not in device:
        device = f"cuda:{ctx.local_rank}"  # one GPU per rank
    return Predictor.from_checkpoint(args.checkpoint, device=device, precision=args.precision, threads=args.threads)


def run(args: argparse.Namespace) -> int:
    from nin.errors import ConfigError
    from nin.predict import shard

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    if args.out is None and (args.resume or args.overwrite):
        raise ConfigError("--resume and --overwrite need --out FILE")
    ctx = shard.join_group()
    try:
        code = _predict(args, ctx)
    except BaseException:
        shard.done(ctx)
        raise
    shard.done(ctx, finished=True)
    return code


def _predict(args: argparse.Namespace, ctx) -> int:
    from nin.errors import ConfigError
    from nin.predict.inputs import check_inputs, expand_inputs

    if ctx.enabled and args.out is None:
        raise ConfigError("under torchrun, give --out FILE: every rank writes its part and rank 0 merges them")
    if ctx.enabled and "@-" in args.paths:
        raise ConfigError("under torchrun every rank reads the whole input: write the list to a file, pass @FILE")
    missing = check_inputs(args.paths)
    predictor = _load(args, ctx)  # a model that cannot load is the one line to print, not the warnings
    if ctx.is_main:
        for path in missing:
            print(f"nin predict: warning: {path} does not exist (it gets an error row)", file=sys.stderr)
    inputs = expand_inputs(args.paths)
    if args.out is None:
        return _print_rows(args, predictor, inputs)
    return _to_file(args, predictor, inputs, ctx)


def _to_file(args: argparse.Namespace, predictor, inputs, ctx) -> int:
    from nin.predict import predict_to_file

    progress = ctx.is_main and not args.no_progress and sys.stderr.isatty()
    s = predict_to_file(
        predictor,
        inputs,
        args.out,
        batch_size=args.batch_size,
        workers=args.workers,
        top_k=args.top_k,
        cam_box=args.cam_box,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=progress,
        ctx=ctx,
        pool=args.decode,
        jpeg_draft=args.jpeg_draft,
    )
    if ctx.is_main:
        speed = f", {s.img_s:,.0f} img/s after the first batch" if s.steady_images else ""
        skipped = f", {s.skipped:,} already there" if s.skipped else ""
        msg = f"{args.out}: {s.rows:,} rows ({s.failed:,} errors); predicted {s.predicted:,}{skipped}{speed}"
        if ctx.enabled:
            msg += f" (rank 0 of {ctx.world})"
        print(f"nin predict: {msg}", file=sys.stderr)
        if s.failed:
            print(f"nin predict: {s.failed:,} files could not be classified: see the error column", file=sys.stderr)
    if s.rows == 0:
        args.out.unlink(missing_ok=True)  # a results file without a row holds nothing worth keeping
        raise _no_images(args.paths)
    return EXIT_ROWS_FAILED if s.failed else 0


def _no_images(paths):
    from nin.data.images import IMAGE_SUFFIXES
    from nin.errors import DataError

    return DataError(f"no image files in {' '.join(paths)} (image suffixes: {' '.join(IMAGE_SUFFIXES)})")


def _print_rows(args: argparse.Namespace, predictor, inputs) -> int:
    """Stream the rows to stdout: a top-k table per image, or one JSON object written as the rows come."""
    width = max(len(lab) for lab in predictor.classes[:10_000]) if predictor.classes else 5
    width = min(max(width, 5), 40)
    from nin.predict import predict_paths

    options = {"batch_size": args.batch_size, "workers": args.workers, "top_k": args.top_k, "cam_box": args.cam_box}
    rows = predict_paths(predictor, inputs, pool=args.decode, jpeg_draft=args.jpeg_draft, **options)
    out = sys.stdout
    if args.json:
        head = {"model": predictor.info.name, "checkpoint": str(args.checkpoint)}
        out.write(json.dumps(head)[:-1] + ', "predictions": [')
    n = failed = 0
    try:
        for row in rows:
            failed += bool(row.error)
            _print_row(args, row, out, width, first=n == 0)
            n += 1
    except BrokenPipeError:  # `nin predict ... | head`: the reader has gone; stop quietly, like a shell tool
        _silence_stdout()
        return 0
    finally:
        if args.json and not out.closed:
            with contextlib.suppress(BrokenPipeError):
                out.write("]}\n")  # the object stays whole even when an error ends the run early
    if n == 0:
        raise _no_images(args.paths)
    return EXIT_ROWS_FAILED if failed else 0


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again


def _print_row(args: argparse.Namespace, row, out, width: int, first: bool) -> None:
    if row.error:
        print(f"nin predict: error: {row.error}", file=sys.stderr)
    if args.json:
        item = {"image": row.path, "error": row.error} if row.error else {"image": row.path, **row.prediction.to_dict()}
        if row.box is not None:
            item["cam_box"] = list(row.box)
        out.write(("" if first else ", ") + json.dumps(item))
    else:
        print(row.path, file=out)
        if row.error:
            print(f"  error: {row.error}", file=out)
        else:
            p = row.prediction
            for rank, (label, prob) in enumerate(zip(p.labels, p.probabilities), start=1):
                label = label if len(label) <= width else label[: width - 1] + "…"
                print(f"  {rank:>2}. {label:<{width}} {100 * prob:6.2f}%  {_bar(prob)}", file=out)
            if row.box is not None:
                print(
                    f"  CAM box of {p.label}: left {row.box[0]}, top {row.box[1]}, right {row.box[2]}, "
                    f"bottom {row.box[3]}",
                    file=out,
                )
    out.flush()
