"""Graceful shutdown behind a load balancer: SIGTERM drains the worker before uvicorn stops it.

uvicorn on SIGTERM closes its listening socket at once and waits for open connections. A load balancer
wants more: the readiness probe fails, new requests are refused with 503 + ``Connection: close`` (so the
balancer retries them elsewhere and drops the connection), and the requests in flight finish. So in each
worker SIGTERM first sets the service draining (:class:`DrainMiddleware` answers for it), waits until no
request is in flight (at most ``--drain-timeout`` seconds), and then hands the signal to uvicorn's own
handler, which closes the socket and ends the process. A second SIGTERM, or SIGINT, stops at once as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
from typing import Any

log = logging.getLogger(__name__)

ALWAYS_OPEN = frozenset({"/healthz"})  # liveness: the process still answers while it drains
CLOSE = (b"connection", b"close")


class DrainState:
    """Requests in flight, and whether the worker is draining."""

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self.task: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False when ``timeout`` seconds passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:  # not the builtin TimeoutError on Python 3.10
            return False


class DrainMiddleware:
    """Counts requests in flight; while draining, refuses new ones with 503 and closes every connection."""

    def __init__(self, app, drain: DrainState) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.drain.draining and scope["path"] not in ALWAYS_OPEN:
            await _refuse(send)
            return
        self.drain.enter()

        async def closing_send(message) -> None:
            if message["type"] == "http.response.start" and self.drain.draining:
                message = {**message, "headers": [*message.get("headers", []), CLOSE]}
            await send(message)

        try:
            await self.app(scope, receive, closing_send)
        finally:
            self.drain.leave()


async def _refuse(send) -> None:
    body = json.dumps({"error": "the server is shutting down; retry on another instance"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(b"retry-after", b"1"), CLOSE]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install_sigterm_drain(drain: DrainState, timeout_s: float) -> None:
    """Make SIGTERM drain this worker first (call from the event loop's thread, the main one, after uvicorn
    installed its handlers: during the application's start-up). Does nothing off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    uvicorn_handler = signal.getsignal(signal.SIGTERM)
    if not callable(uvicorn_handler):
        return

    async def drain_then_stop(sig: int) -> None:
        waited = await drain.wait_idle(timeout_s)
        if not waited:
            log.warning("drain: %d request(s) still in flight after %.0f s; stopping", drain.in_flight, timeout_s)
        uvicorn_handler(sig, None)  # type: ignore[operator]

    def on_sigterm(sig: int, frame: Any) -> None:
        if drain.draining:  # a second SIGTERM: stop now
            uvicorn_handler(sig, frame)  # type: ignore[operator]
            return
        drain.draining = True
        log.info("SIGTERM: draining (%d request(s) in flight)", drain.in_flight)

        def start() -> None:
            drain.task = loop.create_task(drain_then_stop(sig))

        loop.call_soon_threadsafe(start)

    signal.signal(signal.SIGTERM, on_sigterm)
