"""The service's contract in one place: which error statuses each route can give, in both ``--errors`` modes.

``ROUTE_ERRORS`` lists, per route, every error status the route can answer with ``--errors http`` and when;
:func:`shown_status` maps such a status to what a client sees in a mode, and is the one function the error
handlers use too (:func:`nin.serve.http.answer_status`), so the OpenAPI document (:mod:`nin.serve.openapi`),
the table in docs/serving.md and the answers cannot disagree. With ``--errors modelhub`` ModelHub's JSON routes
answer 400 for every error, as ModelHub's engine does, keeping only the statuses ModelHub has no counterpart
for: 405 (a method the route does not take), 408 (a body that arrives too slowly), 413 (the caps) and 503
(loading, draining, overloaded).
"""

from __future__ import annotations

# The routes where ModelHub's engine wraps every error as 400 + {"error": ...}; its samples and thumbnail
# routes, like unknown paths, answer 404, and a wrong method 405, as here.
_JSON_ROUTES = (
    "get_config",
    "get_legal",
    "get_model_io",
    "get_model_files",
    "get_samples",
    "predict",
    "predict_sample",
)
MODELHUB_ROUTES = frozenset(f"/api/{name}" for name in _JSON_ROUTES)
KEPT_STATUSES = frozenset({405, 408, 413, 503})

_LOADING = "the model is still loading (or failed to load), the server is draining, or it is overloaded"
_INTERNAL = "internal error (details only in the server log)"
_MODEL_ROUTE = {500: _INTERNAL, 503: _LOADING}

# (method, path) -> {status: when}, as answered with ``--errors http``.
ROUTE_ERRORS: dict[tuple[str, str], dict[int, str]] = {
    ("get", "/healthz"): {},
    ("get", "/readyz"): {503: "the model is loading or failed to load, or the server is draining"},
    ("get", "/api/get_config"): dict(_MODEL_ROUTE),
    ("get", "/api/get_legal"): dict(_MODEL_ROUTE),
    ("get", "/api/get_model_io"): dict(_MODEL_ROUTE),
    ("get", "/api/get_model_files"): dict(_MODEL_ROUTE),
    ("get", "/api/get_samples"): dict(_MODEL_ROUTE),
    ("get", "/api/samples/{name}"): {404: "no sample of that name", **_MODEL_ROUTE},
    ("get", "/api/thumbnail/{name}"): {404: "neither thumbnail.jpg nor a sample name", **_MODEL_ROUTE},
    ("post", "/api/predict"): {
        400: "no `file` field, an empty upload, a malformed multipart body, or an image that does not decode",
        408: "the body did not arrive within the body timeout (`--body-timeout`)",
        413: "the upload is over the cap (`--max-upload-mb`), or the image over the pixel or side cap",
        415: "not an accepted image type (`Incorrect file type.`), judged from the bytes",
        422: "a bad parameter (`top` outside 1..classes, `sort` or `class_map` not a boolean)",
        **_MODEL_ROUTE,
    },
    ("get", "/api/predict"): {
        400: "the fetched file is empty or does not decode",
        403: "`fileurl` is disabled (`--allow-fileurl`), or names a private address not allowed",
        413: "the fetched file is over the cap, or the image over the pixel or side cap",
        415: "the fetched file is not an accepted image type",
        422: "no `fileurl`, a malformed one, or a bad parameter",
        **_MODEL_ROUTE,
        502: "the fetch failed",
        504: "the fetch took longer than `--fileurl-timeout`",
    },
    ("get", "/api/predict_sample"): {
        400: "the sample does not decode",
        404: "no sample of that name (`The given sample file does not exist.`)",
        413: "the sample is over the pixel or side cap",
        422: "no `filename`, or a bad parameter",
        **_MODEL_ROUTE,
    },
}


def shown_status(path: str, status: int, errors: str) -> int:
    """The status a client sees for an error of ``status`` on ``path`` in the ``errors`` mode."""
    if errors != "modelhub" or status in KEPT_STATUSES:
        return status
    return 400 if path in MODELHUB_ROUTES else status


def route_errors(method: str, path: str, errors: str) -> dict[int, list[str]]:
    """Every error status ``method path`` can answer in the ``errors`` mode, with the cases behind each."""
    shown: dict[int, list[str]] = {}
    for status, when in ROUTE_ERRORS[(method, path)].items():
        shown.setdefault(shown_status(path, status, errors), []).append(when)
    return dict(sorted(shown.items()))
