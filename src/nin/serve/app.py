"""The FastAPI application: ModelHub's API, health probes and the web page, around one loaded model.

``create_app(settings)`` loads the model once, in the background after start-up: ``/healthz`` answers at
once, ``/readyz`` and the model routes answer 503 until the model is loaded and warmed up.
``create_app(settings, predictor=p)`` serves a model already in memory (ready when start-up ends).
``app_from_env()`` is the factory uvicorn calls in each worker process of ``nin serve --workers N``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles

from nin._version import __version__
from nin.serve import schemas
from nin.serve.api import router
from nin.serve.drain import DrainMiddleware, DrainState, install_sigterm_drain
from nin.serve.http import BodyLimitMiddleware, error_response, install_error_handlers
from nin.serve.openapi import install_openapi
from nin.serve.predictor import Predictor
from nin.serve.samples import SampleSet
from nin.serve.service import ServiceState
from nin.serve.settings import ServeSettings

log = logging.getLogger(__name__)

# The page loads nothing from elsewhere: no CDN, no inline script (the CSP enforces it).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MULTIPART_SLACK = 64 * 1024  # bytes of multipart framing allowed on top of the upload cap


def create_app(
    settings: ServeSettings | None = None,
    predictor: Predictor | None = None,
    samples: SampleSet | None = None,
    drain_on_sigterm: bool = False,
) -> FastAPI:
    """Build the service.

    Args:
        settings: limits and options (``checkpoint`` is loaded unless ``predictor`` is given).
        predictor: a model already loaded (tests, notebooks, custom wrappers).
        samples: sample images (default: per model; see :func:`nin.serve.samples.default_samples`).
        drain_on_sigterm: SIGTERM drains requests in flight before uvicorn stops (``nin serve``'s workers).
    """
    settings = settings or ServeSettings()
    state = ServiceState(settings, predictor, samples)
    drain = DrainState()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if drain_on_sigterm:
            install_sigterm_drain(drain, settings.drain_timeout_s)
        if predictor is not None:
            await state.start()  # nothing slow to load: ready when start-up ends
            task = None
        else:
            task = asyncio.create_task(state.start(), name="nin-load-model")
        try:
            yield
        finally:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await state.stop()

    app = FastAPI(
        title="nin",
        version=__version__,
        description="Network In Network behind ModelHub's API",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.nin = state
    install_error_handlers(app)
    install_openapi(app, state)
    app.add_middleware(
        BodyLimitMiddleware,
        max_body=settings.max_upload_bytes + MULTIPART_SLACK,
        upload_cap=settings.max_upload_bytes,
        body_timeout_s=settings.body_timeout_s,
    )
    app.add_middleware(DrainMiddleware, drain=drain)  # outermost: it counts every request
    app.include_router(router)
    app.mount("/static", StaticFiles(packages=[("nin.serve", "static")]), name="static")

    index_html = resources.files("nin.serve.static").joinpath("index.html").read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(index_html, headers=PAGE_HEADERS)

    @app.get("/healthz", responses={200: schemas.json_response("the process answers", schemas.HEALTH)})
    async def healthz() -> JSONResponse:
        """Liveness: the process answers."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", responses={200: schemas.json_response("the model is ready", schemas.READY)})
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: the model is loaded and warmed up."""
        st: ServiceState = request.app.state.nin
        if not st.ready or st.predictor is None:
            msg = f"the model failed to load: {st.error}" if st.error else "the model is loading"
            return error_response(msg, 503, {"Retry-After": "1"})
        batcher = st.batcher
        return JSONResponse(
            {
                "status": "ready",
                "model": st.predictor.describe(),
                "batches": batcher.batches if batcher else 0,
                "images": batcher.images if batcher else 0,
            }
        )

    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory in each worker: settings come from ``NIN_SERVE_SETTINGS`` (set by ``nin serve``)."""
    nin_log = logging.getLogger("nin")
    if not nin_log.handlers:  # a worker process: show loading, ready and failures next to uvicorn's lines
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        nin_log.addHandler(handler)
        nin_log.setLevel(logging.INFO)
    return create_app(ServeSettings.from_env(), drain_on_sigterm=True)
