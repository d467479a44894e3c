"""``nin serve CHECKPOINT``: the ModelHub-compatible REST API and the web page, with uvicorn."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nin.cli.options import add_precision


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint",
        type=Path,
        help="a .pt or .safetensors checkpoint, a Hub folder, hf-hub:ORG/NAME[@REV], or an .onnx file",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes, each with its own model (default: 1)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_precision(p)
    p.add_argument("--threads", type=int, default=0, help="inference threads per worker (default: cores / workers)")
    p.add_argument("--samples", type=Path, default=None, help="folder of sample images (default: built-in)")
    p.add_argument(
        "--modelhub-contrib",
        type=Path,
        default=None,
        metavar="DIR",
        help="serve a ModelHub contribution folder's card, labels, samples, thumbnail and licences",
    )
    p.add_argument(
        "--errors",
        choices=("modelhub", "http"),
        default="modelhub",
        help="error statuses: modelhub = 400 for every error on ModelHub's routes, as ModelHub does (default); "
        "http = a distinct status per error (404, 415, 422, ...)",
    )
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="upload size cap in MB (default: 10)")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="decoded image cap in pixels")
    p.add_argument("--max-side", type=int, default=12_000, help="decoded image cap in pixels a side")
    p.add_argument(
        "--allow-fileurl", action="store_true", help="enable GET /api/predict?fileurl= (public http/https URLs only)"
    )
    p.add_argument(
        "--fileurl-allow-hosts",
        default="",
        metavar="HOST[,HOST...]",
        help="hosts, addresses or networks fileurl may fetch although private or loopback (with --allow-fileurl)",
    )
    p.add_argument("--fileurl-timeout", type=float, default=10.0, help="seconds for a whole fileurl download")
    p.add_argument("--max-batch", type=int, default=32, help="micro-batch size limit (1 = no batching)")
    p.add_argument("--max-wait-ms", type=float, default=0.0, help="wait for a batch to fill (default: 0, never)")
    p.add_argument("--max-queue", type=int, default=256, help="requests waiting for the model; more get 503")
    p.add_argument(
        "--body-timeout", type=float, default=30.0, help="seconds a request body may take to arrive (default: 30)"
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="on SIGTERM, seconds to let requests in flight finish while new ones get 503 (default: 30)",
    )
    p.add_argument("--log-level", default="info", help="uvicorn log level (default: info)")


def run(args: argparse.Namespace) -> int:
    from nin.errors import ConfigError
    from nin.extras import require
    from nin.serve.settings import ENV_VAR, ServeSettings

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1-65535, got {args.port}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    from nin.hub.resolve import resolve_model_file

    args.checkpoint = resolve_model_file(args.checkpoint)  # hf-hub: downloaded once here, not by every worker
    num_classes = _check_model_file(args.checkpoint)
    threads = args.threads or (max(1, (os.cpu_count() or 1) // args.workers) if args.workers > 1 else 0)
    settings = ServeSettings(
        checkpoint=str(args.checkpoint.resolve()),
        device=args.device,
        precision=args.precision,
        threads=threads,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=args.max_pixels,
        max_side=args.max_side,
        samples_dir=str(args.samples.resolve()) if args.samples else "",
        modelhub_contrib=str(args.modelhub_contrib.resolve()) if args.modelhub_contrib else "",
        errors=args.errors,
        allow_fileurl=args.allow_fileurl,
        fileurl_timeout_s=args.fileurl_timeout,
        fileurl_allow_hosts=tuple(h for h in args.fileurl_allow_hosts.split(",") if h.strip()),
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        body_timeout_s=args.body_timeout,
        drain_timeout_s=args.drain_timeout,
    )
    if args.samples:
        from nin.serve.samples import SampleSet

        SampleSet.from_dir(args.samples, settings.max_upload_bytes)  # fail here, in one line, not in every worker
    if args.modelhub_contrib:
        from nin.serve.contrib import Contribution

        Contribution.load(args.modelhub_contrib).check(num_classes)  # a card that cannot describe the model
    os.environ[ENV_VAR] = settings.to_json()  # read by each worker's app factory
    require("fastapi", "nin serve")  # imported by each worker: fail here, in one line
    uvicorn = require("uvicorn", "nin serve")

    print(f"nin serve: http://{args.host}:{args.port}/ (API under /api, Ctrl+C stops)", flush=True)
    uvicorn.run(
        "nin.serve.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        timeout_keep_alive=5,
        server_header=False,
    )
    return 0


def _check_model_file(path: Path) -> int:
    """Fail fast, in one line, on a missing or foreign model file (workers would only log it); its class count."""
    if path.suffix.lower() == ".onnx":
        from nin.errors import CheckpointError
        from nin.export.onnx import read_metadata

        if not path.is_file():
            raise CheckpointError(f"{path} does not exist; write it with `nin export CHECKPOINT --format onnx`")
        try:
            return len(read_metadata(path)["classes"])
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"{path} is not a readable ONNX file ({type(exc).__name__})") from None
    else:
        from nin.train.checkpoint import load_checkpoint

        return len(load_checkpoint(path)["classes"])
