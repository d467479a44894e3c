"""HTTP plumbing: ModelHub's ``{"error": msg}`` body with ModelHub's or distinct statuses, and the body cap.

Every error has a status of its own (``--errors http``): 400 undecodable image or malformed request, 403
fileurl disabled or refused, 404 unknown sample or route, 413 over the upload cap or the image size caps, 415
not an accepted image type, 422 bad parameters, 500 internal, 502/504 fileurl fetch failed / timed out, 503
not ready, draining or overloaded. By default (``--errors modelhub``) ModelHub's own routes answer as ModelHub's
engine does, 400 for every error, keeping only 405, 408, 413 and 503 (:mod:`nin.serve.contract`).
"""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from nin.data.images import ImageDecodeError, ImageTooLarge, UnsupportedImageType
from nin.errors import DataError, NinError, RequestError
from nin.serve.contract import shown_status

log = logging.getLogger(__name__)


def error_response(message: str, status: int, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def answer_status(request: Request, status: int) -> int:
    """The status a client sees: ModelHub's 400 on ModelHub's routes unless the server runs ``--errors http``."""
    state = getattr(request.app.state, "nin", None)
    if state is None:
        return status
    path = request.url.path.removeprefix(request.scope.get("root_path", "") or "")
    return shown_status(path, status, state.settings.errors)


def _error(request: Request, message: str, status: int, headers: dict | None = None) -> JSONResponse:
    return error_response(message, answer_status(request, status), headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes on the request's path (``GET /api/predict`` and ``POST /api/predict``)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def status_of(exc: Exception) -> int:
    """The HTTP status of a user-facing error."""
    if isinstance(exc, RequestError):
        return exc.status
    if isinstance(exc, ImageTooLarge):
        return 413
    if isinstance(exc, UnsupportedImageType):
        return 415
    if isinstance(exc, (ImageDecodeError, DataError)):
        return 400
    return 422  # ConfigError and the rest: a parameter the user can fix


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as ``{"error": message}``; nothing leaks a traceback to the client."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # Starlette names the methods of the first route on the path only
            headers["Allow"] = ", ".join(allowed_methods(request))
        return _error(request, str(exc.detail), exc.status_code, headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "body"))
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
        return _error(request, "; ".join(parts) or "invalid request parameters", 422)

    @app.exception_handler(NinError)
    async def _nin(request: Request, exc: NinError) -> JSONResponse:
        status = status_of(exc)
        headers = {"Retry-After": "1"} if status == 503 else None
        if status in (408, 413):  # the client may still be sending: close rather than read the rest
            headers = {"Connection": "close"}
        return _error(request, str(exc), status, headers)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(request, "internal server error; the server log has the details", 500)


class PayloadTooLarge(RequestError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload is larger than the limit of {limit:,} bytes", 413)


class BodyTimeout(RequestError):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the request body did not arrive within {timeout_s:g} s; send it at once and retry", 408)


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_body`` bytes while they are read, not after buffering them, and bodies
    that take longer than ``body_timeout_s`` to arrive (a client sending byte by byte holds no model slot: the
    routes read the whole body before they queue for the model, and this bounds how long that read may take).

    A declared ``Content-Length`` over the cap is refused before any byte is read; a chunked or lying body
    is counted as it arrives and the request fails with 413 as soon as it passes the cap; a body still
    incomplete after ``body_timeout_s`` fails with 408. Both close the connection.
    """

    def __init__(self, app, max_body: int, upload_cap: int | None = None, body_timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_body = max_body
        self.upload_cap = upload_cap or max_body  # the number users configured, for the message
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._reject(send)
            return
        received = 0
        started = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        body_done = False

        async def limited_receive():
            nonlocal received, body_done
            if body_done:  # afterwards only a disconnect can come: no deadline on waiting for it
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:  # not the builtin TimeoutError on Python 3.10
                raise BodyTimeout(self.body_timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise PayloadTooLarge(self.upload_cap)
                body_done = not message.get("more_body", False)
            return message

        async def tracking_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except (PayloadTooLarge, BodyTimeout) as exc:
            if not started:
                await self._reject(send, exc)

    async def _reject(self, send, exc: RequestError | None = None) -> None:
        exc = exc or PayloadTooLarge(self.upload_cap)
        body = json.dumps({"error": str(exc)}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        # The client may still be sending: close the connection rather than read the rest.
        headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
