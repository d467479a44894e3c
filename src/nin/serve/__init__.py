"""Serving: ``Predictor`` (Python), the ModelHub-compatible REST service and its web page.

Imports are lazy so that ``import nin.serve`` costs nothing until a name is used (FastAPI is only needed
for the service, not for ``Predictor``).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Predictor": "nin.serve.predictor",
    "Prediction": "nin.serve.predictor",
    "ServeSettings": "nin.serve.settings",
    "create_app": "nin.serve.app",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nin.serve' has no attribute {name!r}")
