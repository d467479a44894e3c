"""Optional dependencies: each belongs to an extra of the package, and a missing one is one line that names it.

Every import of an optional package goes through :func:`require`, so ``nin serve`` without uvicorn, ``nin export``
without onnx, ``nin report`` without matplotlib or SVHN without scipy all say the same kind of thing: what
needs the package and which extra installs it (``pip install 'nin[serve]'``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from nin.errors import MissingDependencyError

# The optional packages by the name they are imported as: (pip package, extra of pyproject.toml).
EXTRAS: dict[str, tuple[str, str]] = {
    "fastapi": ("fastapi", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "onnx": ("onnx", "export"),
    "onnxruntime": ("onnxruntime", "export"),
    "matplotlib": ("matplotlib", "viz"),
    "tensorboard": ("tensorboard", "viz"),
    "scipy": ("scipy", "data"),
    "pyarrow": ("pyarrow", "parquet"),
    "safetensors": ("safetensors", "hub"),
    "huggingface_hub": ("huggingface_hub", "hub"),
}


def require(module: str, purpose: str, package: str | None = None) -> ModuleType:
    """Import ``module`` (e.g. ``scipy.io``), or raise :class:`MissingDependencyError` in one line.

    Args:
        module: what to import.
        purpose: what needs it, for the message (``"nin serve"``, ``"reading SVHN"``).
        package: the key of :data:`EXTRAS` when it is not the top-level name of ``module``
            (``torch.utils.tensorboard`` needs ``tensorboard``).
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        pip, extra = EXTRAS[package or module.split(".")[0]]
        raise MissingDependencyError(
            f"{purpose} needs {pip}, which is not installed: pip install 'nin[{extra}]' (or pip install {pip})"
        ) from None
