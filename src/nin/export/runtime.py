"""ONNX Runtime sessions for exported files: one place for session options, providers, threads and metadata.

onnxruntime is the ``export`` extra; it is imported when a session is opened, never at import time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from nin.errors import CheckpointError
from nin.export.names import ONNX_META_KEY
from nin.extras import require


def inference_session(path: str | Path, threads: int = 0):
    """An ``onnxruntime.InferenceSession`` on the CPU with every graph optimisation on.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (0 = ONNX Runtime's default, one per physical core).

    Raises:
        CheckpointError: the file is not a loadable ONNX model.
        MissingDependencyError: onnxruntime is not installed.
    """
    ort = require("onnxruntime", "running an .onnx file")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} is not a loadable ONNX model ({first})") from None


def parse_metadata(props: Mapping[str, str], path: str | Path) -> dict:
    """The JSON ``nin export`` stores under metadata key ``nin``, from a file's metadata properties."""
    if ONNX_META_KEY not in props:
        raise CheckpointError(f"{path} has no nin metadata; re-export it with `nin export CHECKPOINT --format onnx`")
    return json.loads(props[ONNX_META_KEY])


def session_metadata(session, path: str | Path) -> dict:
    """:func:`parse_metadata` of an open session (no second read of the file)."""
    return parse_metadata(session.get_modelmeta().custom_metadata_map, path)
