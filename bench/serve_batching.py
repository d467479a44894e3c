"""Throughput of ``nin serve`` with and without micro-batching, under concurrent clients.

    python bench/serve_batching.py runs/quickstart/last.pt [--concurrency 1 16] [--seconds 10]

For each ``--max-batch`` setting (default: 1 = off, 32 = on) it starts ``nin serve`` on a free port, keeps
``--concurrency`` clients uploading a digit PNG to ``/api/predict`` for ``--seconds``, and prints one JSON line
per run: requests/s, latency p50/p95 (ms), and the mean batch size the server formed (from ``/readyz``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

from nin.serve.process import free_port, wait_ready


def _digit_png() -> bytes:
    from nin.data.embedded import load_embedded_mnist

    buf = io.BytesIO()
    Image.fromarray(load_embedded_mnist("test").images[0, 0].numpy()).save(buf, format="PNG")
    return buf.getvalue()


async def _load(base: str, png: bytes, concurrency: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def client(c: httpx.AsyncClient) -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            r = await c.post("/api/predict", files={"file": ("d.png", png, "image/png")})
            r.raise_for_status()
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:
        await asyncio.gather(*(client(c) for _ in range(concurrency)))
    return latencies


def run_one(checkpoint: Path, max_batch: int, concurrency: int, seconds: float, threads: int) -> dict:
    port = free_port()
    cmd = [sys.executable, "-m", "nin", "serve", str(checkpoint), "--port", str(port), "--log-level", "warning"]
    cmd += ["--max-batch", str(max_batch)] + (["--threads", str(threads)] if threads else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        png = _digit_png()
        asyncio.run(_load(base, png, concurrency, 1.0))  # warm-up
        before = httpx.get(f"{base}/readyz").json()
        t0 = time.perf_counter()
        lat = asyncio.run(_load(base, png, concurrency, seconds))
        wall = time.perf_counter() - t0
        after = httpx.get(f"{base}/readyz").json()
    finally:
        proc.terminate()
        proc.wait(20)
    batches = max(1, after["batches"] - before["batches"])
    q = statistics.quantiles(lat, n=20)
    return {
        "max_batch": max_batch,
        "concurrency": concurrency,
        "requests": len(lat),
        "req_per_s": round(len(lat) / wall, 1),
        "p50_ms": round(1000 * statistics.median(lat), 1),
        "p95_ms": round(1000 * q[18], 1),
        "mean_batch": round((after["images"] - before["images"]) / batches, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    p.add_argument("--max-batch", type=int, nargs="+", default=[1, 32])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=0, help="server inference threads (default: torch's)")
    args = p.parse_args(argv)
    for concurrency in args.concurrency:
        for max_batch in args.max_batch:
            print(json.dumps(run_one(args.checkpoint, max_batch, concurrency, args.seconds, args.threads)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
