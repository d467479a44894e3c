"""ModelHub's REST routes, same paths and payloads, under ``/api``.

Extras that ModelHub clients can ignore: ``?top=K`` (keep the K most probable classes), ``?sort=true`` (order
by probability), ``?class_map=true`` (add the top class's map overlaid on the input, as a PNG data URI).
A contribution's card (``--modelhub-contrib``) sets the defaults of ``top`` and ``sort`` with its
``modelhub.top`` and ``modelhub.sort``.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from nin.errors import RequestError
from nin.serve import schemas
from nin.serve.fetch import fetch_url
from nin.serve.modelhub import INPUT_FORMATS, MIME_FORMATS
from nin.serve.service import ServiceState

router = APIRouter(prefix="/api")

TopQuery = Query(None, ge=1, description="keep only the K most probable classes")
SortQuery = Query(None, description="order the classes by probability (default: yes with top, else no)")
MapQuery = Query(False, description="add the top class's class map overlaid on the input")

_IMAGES = list(MIME_FORMATS)  # the types of the files nin decodes (a sample may be any of them)
PREDICTED = {200: schemas.json_response("ModelHub's prediction body", schemas.PREDICTION)}
# The upload of POST /api/predict as ModelHub's clients send it (multipart field `file`), or the raw image.
# The accepted types are the card's; nin.serve.openapi narrows this list to them once the model is loaded.
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "the image: multipart/form-data with the file in field `file`, or the raw image as the body",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {**schemas.BINARY, "description": "the image file"}},
                },
                "encoding": {"file": {"contentType": ", ".join(INPUT_FORMATS)}},
            },
            **{mime: {"schema": schemas.BINARY} for mime in INPUT_FORMATS},
        },
    }
}


def _state(request: Request) -> ServiceState:
    return request.app.state.nin


@router.get("/get_config", responses={200: schemas.json_response("the config card", schemas.CONFIG)})
async def get_config(request: Request) -> JSONResponse:
    return JSONResponse(_state(request).require_card().config)


@router.get("/get_legal", responses={200: schemas.json_response("the legal texts", schemas.LEGAL)})
async def get_legal(request: Request) -> JSONResponse:
    return JSONResponse(_state(request).require_card().legal)


@router.get("/get_model_io", responses={200: schemas.json_response("the model's io", schemas.MODEL_IO)})
async def get_model_io(request: Request) -> JSONResponse:
    return JSONResponse(_state(request).require_card().config["model"]["io"])


@router.get(
    "/get_model_files",
    response_class=FileResponse,
    responses={200: schemas.binary_response("ModelHub's model folder as a zip", ["application/zip"])},
)
async def get_model_files(request: Request) -> FileResponse:
    state = _state(request)
    card = state.require_card()
    path = await asyncio.to_thread(state.model_zip)
    name = f"{card.config['meta']['name']}_model.zip"
    return FileResponse(path, media_type="application/zip", filename=name)


@router.get("/get_samples", responses={200: schemas.json_response("the sample URLs", schemas.SAMPLE_URLS)})
async def get_samples(request: Request) -> JSONResponse:
    samples = _state(request).require_card().samples
    base = str(request.base_url)
    return JSONResponse([f"{base}api/samples/{quote(name)}" for name in samples.names()])


def _sample(state: ServiceState, name: str):
    sample = state.require_card().samples.get(name)
    if sample is None:
        raise RequestError(
            f"The given sample file does not exist. {name!r} is not among the names /api/get_samples lists", 404
        )
    return sample


@router.get(
    "/samples/{name}",
    response_class=Response,
    responses={200: schemas.binary_response("the sample file", _IMAGES)},
)
async def sample_file(request: Request, name: str) -> Response:
    sample = _sample(_state(request), name)
    return Response(sample.data, media_type=sample.mime)


@router.get(
    "/thumbnail/{name}",
    response_class=Response,
    responses={
        200: schemas.binary_response("the thumbnail (the model's is JPEG, a sample's PNG)", ["image/jpeg", "image/png"])
    },
)
async def thumbnail(request: Request, name: str) -> Response:
    samples = _state(request).require_card().samples
    found = await asyncio.to_thread(samples.thumbnail, name)
    if found is None:
        raise RequestError(f"no thumbnail named {name!r}; use thumbnail.jpg or a sample name", 404)
    data, mime = found
    return Response(data, media_type=mime)


@router.post("/predict", responses=PREDICTED, openapi_extra=UPLOAD_BODY)
async def predict_upload(
    request: Request, top: int | None = TopQuery, sort: bool | None = SortQuery, class_map: bool = MapQuery
) -> JSONResponse:
    """ModelHub's upload: multipart form with the image in field ``file`` (a raw ``image/*`` body works too)."""
    state = _state(request)
    state.require_ready()
    content_type = request.headers.get("content-type", "")
    cap = state.settings.max_upload_bytes
    if content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=8) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise RequestError("POST /api/predict needs the image in the multipart field `file`", 400)
            data = await upload.read(cap + 1)
            declared, filename = upload.content_type, upload.filename
    elif content_type.startswith("image/"):
        data, declared, filename = await request.body(), content_type, None
    else:
        raise RequestError(
            "Incorrect file type. Send multipart/form-data with the image in field `file`"
            + (f" (got {content_type})" if content_type else ""),
            415,
        )
    if len(data) > cap:
        raise RequestError(f"the image is larger than the upload limit of {cap:,} bytes", 413)
    if not data:
        raise RequestError("the uploaded file is empty", 400)
    body = await state.predict(data, content_type=declared, filename=filename, top=top, sort=sort, class_map=class_map)
    return JSONResponse(body)


@router.get("/predict", responses=PREDICTED)
async def predict_url(
    request: Request,
    fileurl: str | None = Query(None, description="http(s) URL of an image (when the server allows it)"),
    top: int | None = TopQuery,
    sort: bool | None = SortQuery,
    class_map: bool = MapQuery,
) -> JSONResponse:
    """ModelHub's ``?fileurl=``: off unless the server runs with ``--allow-fileurl``."""
    state = _state(request)
    state.require_ready()
    s = state.settings
    if not fileurl:
        raise RequestError("GET /api/predict needs ?fileurl=URL; to upload, POST the image in field `file`", 422)
    if not s.allow_fileurl:
        raise RequestError("predict?fileurl= is disabled on this server (start it with --allow-fileurl)", 403)
    data, declared, final = await asyncio.to_thread(
        lambda: fetch_url(
            fileurl,
            max_bytes=s.max_upload_bytes,
            timeout_s=s.fileurl_timeout_s,
            allow_private=s.fileurl_allow_private,
            allow_hosts=s.fileurl_allowlist,
        )
    )
    if not data:
        raise RequestError("fileurl returned an empty body", 400)
    name = final.rsplit("/", 1)[-1].split("?", 1)[0]
    body = await state.predict(data, content_type=declared, filename=name, top=top, sort=sort, class_map=class_map)
    return JSONResponse(body)


@router.get("/predict_sample", responses=PREDICTED)
async def predict_sample(
    request: Request,
    filename: str = Query(..., description="a name from /api/get_samples"),
    top: int | None = TopQuery,
    sort: bool | None = SortQuery,
    class_map: bool = MapQuery,
) -> JSONResponse:
    state = _state(request)
    sample = _sample(state, filename)
    options = dict(top=top, sort=sort, class_map=class_map, sample=True)
    body = await state.predict(sample.data, content_type=sample.mime, filename=sample.name, **options)
    return JSONResponse(body)
