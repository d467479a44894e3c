"""JSON Schemas of what the service answers, for its OpenAPI document (routes' ``responses=``, nin.serve.openapi).

They describe ModelHub's payloads as nin serves them: the prediction body, the config card (free-form beyond the
fields every card has), the legal texts, the model's io, the sample list, and the ``{"error": ...}`` body.
"""

from __future__ import annotations

ERROR = {
    "title": "Error",
    "type": "object",
    "description": "ModelHub's error body: one message that says what is wrong and what to do.",
    "required": ["error"],
    "properties": {"error": {"type": "string", "minLength": 1}},
    "additionalProperties": False,
}

_ROW = {
    "type": "object",
    "required": ["label", "probability"],
    "properties": {"label": {"type": "string"}, "probability": {"type": "number", "minimum": 0, "maximum": 1}},
}
_CLASS_MAP = {
    "type": "object",
    "description": "the top class's map laid over the image the model saw (with ?class_map=true)",
    "required": ["label", "index", "probability", "map_size", "image"],
    "properties": {
        "label": {"type": "string"},
        "index": {"type": "integer", "minimum": 0},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "map_size": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2},
        "image": {"type": "string", "pattern": "^data:image/png;base64,"},
    },
}
PREDICTION = {
    "title": "Prediction",
    "type": "object",
    "description": "ModelHub's prediction body: one label_list output.",
    "required": ["output", "timestamp", "processing_time", "model"],
    "properties": {
        "output": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": {
                "type": "object",
                "required": ["prediction", "shape", "type", "name", "description"],
                "properties": {
                    "prediction": {"type": "array", "minItems": 1, "items": _ROW},
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1},
                    "type": {"type": "string", "enum": ["label_list"]},
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                },
            },
        },
        "timestamp": {"type": "string", "pattern": r"^\d{4}(-\d\d){5}-\d{6}$"},
        "processing_time": {"type": "number", "minimum": 0},
        "model": {
            "type": "object",
            "required": ["id", "name"],
            "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
        },
        "class_map": {"anyOf": [_CLASS_MAP, {"type": "null"}]},
    },
}
CONFIG = {
    "title": "ModelConfig",
    "type": "object",
    "description": "the model's ModelHub config.json (generated from the checkpoint, or a contribution's card)",
    "required": ["id", "meta", "model"],
    "properties": {
        "id": {"type": "string"},
        "meta": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        "publication": {"type": "object"},
        "model": {"type": "object", "required": ["io"], "properties": {"io": {"type": "object"}}},
        "modelhub": {"type": "object"},
    },
}
MODEL_IO = {
    "title": "ModelIO",
    "type": "object",
    "description": 'config["model"]["io"]',
    "required": ["input", "output"],
    "properties": {"input": {"type": "object"}, "output": {"type": "array", "items": {"type": "object"}}},
}
LEGAL = {
    "title": "Legal",
    "type": "object",
    "required": ["modelhub_license", "modelhub_acknowledgements", "model_license", "sample_data_license"],
    "properties": {
        key: {"type": "string"}
        for key in ("modelhub_license", "modelhub_acknowledgements", "model_license", "sample_data_license")
    },
}
SAMPLE_URLS = {
    "title": "SampleURLs",
    "type": "array",
    "description": "the URL of each sample, .../api/samples/NAME",
    "items": {"type": "string"},
}
HEALTH = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}}}
READY = {
    "type": "object",
    "required": ["status", "model", "batches", "images"],
    "properties": {
        "status": {"type": "string", "enum": ["ready"]},
        "model": {"type": "string"},
        "batches": {"type": "integer", "minimum": 0},
        "images": {"type": "integer", "minimum": 0},
    },
}
BINARY = {"type": "string", "format": "binary"}


def json_response(description: str, schema: dict) -> dict:
    """An OpenAPI response object with a JSON body of ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def binary_response(description: str, media_types: list[str]) -> dict:
    """An OpenAPI response object whose body is a file of one of ``media_types``."""
    return {"description": description, "content": {m: {"schema": BINARY} for m in media_types}}
