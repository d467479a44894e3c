"""Export: ONNX (fp32, verified against PyTorch) and int8 (ONNX Runtime static quantisation).

Names are imported lazily: ``import nin.export`` does not load onnx or onnxruntime.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "export_onnx": "nin.export.onnx",
    "read_metadata": "nin.export.onnx",
    "quantize_onnx": "nin.export.quantize",
    "export_int8": "nin.export.quantize",
    "benchmark_int8": "nin.export.quantize",
    "calibration_images": "nin.export.quantize",
    "load_for_eval": "nin.export.evaluate",
    "evaluate_file": "nin.export.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nin.export' has no attribute {name!r}")
