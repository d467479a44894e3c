"""Faults a deployed `nin serve` meets, each against a real process on 127.0.0.1 with a tiny checkpoint.

- SIGTERM drains: requests in flight finish, new ones get 503 + Retry-After + Connection: close and the
  readiness probe fails, then the process exits. (Fails on the code before: uvicorn closed its socket at once,
  so new requests were refused at the TCP level and /readyz never said 503.)
- Overload: beyond the queue plus one batch, 503 with Retry-After at once, before any decoding, while the
  admitted requests finish. (Fails on the code before: requests waited for a decoder thread and the
  inference queue rarely filled, so nothing was refused.)
- A slow client (a body sent byte by byte) gets 408 after --body-timeout and holds no model slot meanwhile.
  (Fails on the code before: no timeout, the client held its connection as long as it liked.)
- A worker process killed under load (`--workers 2`) is replaced, and its clients get an error, not a hang.
  (Today's code already holds this: uvicorn's supervisor restarts dead workers; the test documents it.)
"""

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from PIL import Image

from fixtures.serve.builders import digit, png_bytes, save_ckpt
from nin.serve.process import free_port, wait_ready


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_ckpt(tmp_path_factory.mktemp("faults") / "m.pt", dataset="mnist_embedded")


@contextmanager
def server(ckpt: Path, *options: str, tmp: Path):
    port = free_port()
    log = (tmp / "serve.log").open("w")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "nin", "serve", str(ckpt), "--port", str(port), "--log-level", "warning"]
    # Its own session, so the teardown reaches uvicorn's worker processes too (SIGKILL of the supervisor alone
    # would leave them serving as orphans).
    proc = subprocess.Popen([*cmd, *options], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(base, proc, timeout=90)
        except RuntimeError as exc:
            pytest.fail(f"{exc}\n{(tmp / 'serve.log').read_text()}")
        yield base, proc, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(20)
        log.close()


def _upload(base: str, data: bytes, timeout: float = 20) -> httpx.Response:
    return httpx.post(f"{base}/api/predict", files={"file": ("d.png", data, "image/png")}, timeout=timeout)


def test_sigterm_drains_in_flight_requests_and_refuses_new_ones(ckpt, tmp_path):
    # --max-wait-ms holds each batch open 3 s: requests stay in flight long enough to send SIGTERM among them.
    opts = ["--max-batch", "8", "--max-wait-ms", "3000", "--drain-timeout", "20"]
    with server(ckpt, *opts, tmp=tmp_path) as (base, proc, _):
        data = png_bytes(digit(0))
        with ThreadPoolExecutor(3) as pool:
            in_flight = [pool.submit(_upload, base, data) for _ in range(3)]
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            ready = httpx.get(f"{base}/readyz", timeout=5)
            new = _upload(base, data, timeout=5)
            done = [f.result(timeout=30) for f in in_flight]
        assert ready.status_code == 503 and ready.headers["connection"] == "close"
        assert new.status_code == 503 and new.headers["retry-after"] == "1"
        assert new.headers["connection"] == "close" and "shutting down" in new.json()["error"]
        assert [r.status_code for r in done] == [200, 200, 200]  # none dropped
        assert all(r.headers.get("connection") == "close" for r in done)
        proc.wait(20)  # then the process ends by itself


def _slow_png(side: int = 6000) -> bytes:
    """A small upload that takes a while to decode (36 MP of one grey: 48 kB, ~0.3 s on a slow core)."""
    buf = io.BytesIO()
    Image.new("L", (side, side), 128).save(buf, format="PNG")
    return buf.getvalue()


def test_overload_is_503_at_once_while_admitted_requests_finish(ckpt, tmp_path):
    opts = ["--max-batch", "1", "--max-queue", "1"]
    with server(ckpt, *opts, tmp=tmp_path) as (base, _, _):
        data = _slow_png()  # the two admitted requests (queue 1 + batch 1) stay busy decoding

        def timed():
            t0 = time.monotonic()
            r = _upload(base, data, timeout=60)
            return r, time.monotonic() - t0

        barrier = threading.Barrier(8)

        def go():
            barrier.wait(10)
            return timed()

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: go(), range(8)))
        statuses = sorted(r.status_code for r, _ in results)
        assert set(statuses) <= {200, 503}, statuses
        refused = [(r, t) for r, t in results if r.status_code == 503]
        finished = [t for r, t in results if r.status_code == 200]
        assert refused and finished, statuses
        assert all(r.headers["retry-after"] == "1" and "busy" in r.json()["error"] for r, _ in refused)
        assert max(t for _, t in refused) < min(finished), "a refusal waited for the model"


def test_slow_client_times_out_without_holding_a_model_slot(ckpt, tmp_path):
    opts = ["--body-timeout", "1.5", "--max-batch", "1", "--max-queue", "1"]
    with server(ckpt, *opts, tmp=tmp_path) as (base, _, port):
        data = png_bytes(digit(1))
        slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        head = (
            f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode()
        for s in slow:
            s.sendall(head)
        t0 = time.monotonic()
        answers = {}
        for i in range(40):  # one byte every 0.1 s: at most 4 s, far more than the body timeout
            for n, s in enumerate(slow):
                if n in answers:
                    continue
                with contextlib.suppress(OSError):  # the server closed the connection after answering
                    s.sendall(data[i : i + 1])
            if i % 5 == 0:  # meanwhile, ordinary clients get model slots
                assert _upload(base, data, timeout=10).status_code == 200
            for n, s in enumerate(slow):
                s.setblocking(False)
                try:
                    got = s.recv(4096)
                    if got:
                        answers[n] = got
                except BlockingIOError:
                    pass
                finally:
                    s.setblocking(True)
            if len(answers) == len(slow):
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
        for s in slow:
            s.close()
        assert len(answers) == 3, f"slow clients still connected after {elapsed:.1f} s"
        assert all(a.startswith(b"HTTP/1.1 408") and b"connection: close" in a.lower() for a in answers.values())


def _workers(pid: int) -> set[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = set()
    for c in children:
        try:
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes():
                found.add(int(c))
        except OSError:
            pass
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finding worker processes needs Linux's /proc")
def test_a_killed_worker_is_replaced_and_its_clients_get_an_error_not_a_hang(ckpt, tmp_path):
    with server(ckpt, "--workers", "2", tmp=tmp_path) as (base, proc, _):
        deadline = time.monotonic() + 60
        while len(_workers(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        before = _workers(proc.pid)
        assert len(before) == 2
        stop = threading.Event()
        outcomes: list[str] = []

        def client():
            with httpx.Client(base_url=base, timeout=10) as c:
                while not stop.is_set():
                    try:
                        r = c.get("/api/predict_sample", params={"filename": "digit-3.png"})
                        outcomes.append(str(r.status_code))
                    except httpx.TimeoutException:
                        outcomes.append("hang")
                    except httpx.TransportError:
                        outcomes.append("error")

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = _workers(proc.pid)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.2)
        replaced = _workers(proc.pid)
        wait_ready(base, proc, timeout=60)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(30)
        assert len(replaced) == 2 and victim not in replaced
        assert "hang" not in outcomes
        assert set(outcomes) <= {"200", "503", "error"}, set(outcomes)
        assert outcomes[-1] == "200" or "200" in outcomes[-8:]
