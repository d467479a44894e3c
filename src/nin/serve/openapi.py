"""The OpenAPI document (``/openapi.json``): FastAPI's, completed with what FastAPI cannot know by itself.

FastAPI writes the paths, parameters and the responses the routes declare. This step adds the rest, for the
server as it runs: every error status of each route in the server's ``--errors`` mode with the ``{"error": ...}``
body (from :data:`nin.serve.contract.ROUTE_ERRORS`, the table the error handlers follow too), ``Retry-After`` on
503, the bounds of ``top`` (1..classes), the sample names a path or ``filename`` may take, and the upload types
the card accepts. FastAPI's generic 422 ``HTTPValidationError`` goes: validation errors leave as ``{"error": ...}``.
Until the model is loaded the document is rebuilt on each request (the card is not known yet); then it is kept.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from fastapi.openapi.utils import get_openapi

from nin.data.images import FORMAT_MIME
from nin.serve import schemas
from nin.serve.contract import ROUTE_ERRORS, route_errors

if TYPE_CHECKING:
    from fastapi import FastAPI

    from nin.serve.card import Card
    from nin.serve.service import ServiceState

ERROR_REF = {"$ref": "#/components/schemas/Error"}
RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer", "minimum": 0}}
}
_BOOLEAN = {"type": "boolean"}


def install_openapi(app: FastAPI, state: ServiceState) -> None:
    """Serve the completed document at ``app.openapi()`` (and so at /openapi.json and /docs)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        s = state.settings
        doc = complete(doc, s.errors, state.card if state.ready else None, s.allow_fileurl)
        if state.ready:
            app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def complete(doc: dict[str, Any], errors: str, card: Card | None, fileurl: bool = False) -> dict[str, Any]:
    """``doc`` (FastAPI's) with the statuses of ``errors`` mode and, when known, the card's names and bounds."""
    doc = copy.deepcopy(doc)
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    for generic in ("HTTPValidationError", "ValidationError"):
        components.pop(generic, None)
    components["Error"] = schemas.ERROR
    for (method, path), _ in ROUTE_ERRORS.items():
        op = doc["paths"][path][method]
        responses = {k: v for k, v in op["responses"].items() if k != "422"}
        for status, cases in route_errors(method, path, errors).items():
            answer: dict[str, Any] = {
                "description": "; ".join(cases),
                "content": {"application/json": {"schema": ERROR_REF}},
            }
            if status == 503:
                answer["headers"] = RETRY_AFTER
            responses[str(status)] = answer
        op["responses"] = dict(sorted(responses.items()))
        for param in op.get("parameters", []):
            _describe_parameter(param, card, path, fileurl)
    if card is not None:
        _accepted_uploads(doc["paths"]["/api/predict"]["post"], card)
        sample_types = sorted({card.samples.get(name).mime for name in card.samples.names()})  # type: ignore[union-attr]
        ok = doc["paths"]["/api/samples/{name}"]["get"]["responses"]["200"]
        ok["content"] = {m: {"schema": schemas.BINARY} for m in sample_types} or ok["content"]
    return doc


def _describe_parameter(param: dict[str, Any], card: Card | None, path: str, fileurl: bool) -> None:
    name, schema = param["name"], param.get("schema", {})
    title = {"title": schema["title"]} if "title" in schema else {}
    if name == "top":
        bounds = {"maximum": len(card.classes)} if card is not None else {}
        param["schema"] = {**title, "type": "integer", "minimum": 1, **bounds}
    elif name in ("sort", "class_map"):
        param["schema"] = {**title, **_BOOLEAN}
    elif name == "fileurl":
        param["required"] = True  # optional in FastAPI's eyes only to answer its absence with ModelHub's error
        param["schema"] = {**title, "type": "string", "minLength": 1}
        if not fileurl:  # every request is then refused: 400 (ModelHub's status for any error) or 403
            param["description"] = "disabled on this server (`nin serve --allow-fileurl` enables it)"
    elif name in ("filename", "name") and card is not None:
        names = card.samples.names()
        if path.startswith("/api/thumbnail/"):
            names = ["thumbnail.jpg", *names]
        param["schema"] = {**title, "type": "string", "enum": names}


def _accepted_uploads(op: dict[str, Any], card: Card) -> None:
    """The upload types of POST /api/predict: the card's accepted formats, as the bytes are judged."""
    mimes = [FORMAT_MIME[f] for f in card.formats if f in FORMAT_MIME]
    content = op["requestBody"]["content"]
    multipart = content["multipart/form-data"]
    multipart["encoding"] = {"file": {"contentType": ", ".join(mimes)}}
    op["requestBody"]["content"] = {"multipart/form-data": multipart, **{m: {"schema": schemas.BINARY} for m in mimes}}


def contract_table(modelhub: dict[str, Any], http: dict[str, Any]) -> str:
    """docs/serving.md's contract table, rendered from the documents of both modes (tests keep them equal)."""
    rows = ["| route | 200 answers | `--errors modelhub` | `--errors http` |", "|---|---|---|---|"]
    for path, ops in modelhub["paths"].items():
        for method, op in ops.items():
            ok = ", ".join(f"`{m}`" for m in op["responses"]["200"].get("content", {}))
            statuses = [
                ", ".join(s for s in doc["paths"][path][method]["responses"] if s != "200") or "-"
                for doc in (modelhub, http)
            ]
            rows.append(f"| `{method.upper()} {path}` | {ok} | {statuses[0]} | {statuses[1]} |")
    return "\n".join(rows) + "\n"
