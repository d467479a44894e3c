"""Load test of `nin serve`: N concurrent clients x M requests against a local server.

Starts the server on 127.0.0.1 (a free port) with the given checkpoint, fires PNG uploads at
/api/predict from N client threads, and prints throughput, p50/p99 latency, errors and the server's
peak RSS. Only loopback traffic; bounded in requests and time.

    python bench/load.py CHECKPOINT [--clients 8] [--requests 500] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from nin.serve.process import free_port, wait_ready


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a process, MB; Linux only."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def sample_pngs(n: int = 16, size: int = 28) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def run(checkpoint: str, clients: int, requests: int, workers: int = 1, deadline_s: float = 900.0) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "nin",
        "serve",
        checkpoint,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(base, proc)
        pngs = sample_pngs()
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + deadline_s

        def client(k: int) -> None:
            with httpx.Client(base_url=base, timeout=60) as c:
                for i in range(requests):
                    if time.monotonic() > stop_at:
                        with lock:
                            errors.append("deadline")
                        return
                    body = pngs[(k + i) % len(pngs)]
                    t = time.perf_counter()
                    try:
                        r = c.post("/api/predict", files={"file": ("digit.png", body, "image/png")})
                        ok = r.status_code == 200 and "output" in r.json()
                        err = None if ok else f"HTTP {r.status_code}"
                    except (httpx.HTTPError, ValueError) as exc:
                        err = type(exc).__name__
                    dt = time.perf_counter() - t
                    with lock:
                        latencies.append(dt)
                        if err:
                            errors.append(err)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
        ms = sorted(1000 * x for x in latencies)
        return {
            "clients": clients,
            "requests_per_client": requests,
            "total": len(ms),
            "errors": len(errors),
            "error_kinds": sorted(set(errors)),
            "wall_s": round(wall, 2),
            "throughput_rps": round(len(ms) / wall, 1),
            "latency_ms_p50": round(statistics.median(ms), 1) if ms else None,
            "latency_ms_p99": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 1) if ms else None,
            "server_peak_rss_mb": round(peak_rss_mb(proc.pid), 1),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=500, help="requests per client")
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    res = run(a.checkpoint, a.clients, a.requests, a.workers)
    if a.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:>22}: {v}")
    return 0 if res["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
