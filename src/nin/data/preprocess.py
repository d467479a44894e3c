"""Preprocessors by name: the recipe a config or a checkpoint names (``"preprocess": {"name": ...}``).

Every recipe of the package is listed here, so a name in a checkpoint written by any earlier version
(``none``, ``scale``, ``mean_std``, ``gcn_zca``, ``gcn_lcn``, ``imagenet``) resolves without importing anything
else. :func:`register_preprocessor` adds a recipe of your own.
"""

from __future__ import annotations

from nin.data.imagenet_preprocess import ImageNetPreprocess
from nin.data.preprocess_base import Identity, MeanStd, Preprocessor, Scale
from nin.data.whiten import GCNLCN, GCNZCA
from nin.errors import ConfigError

__all__ = [
    "Preprocessor",
    "build_preprocessor",
    "list_preprocessors",
    "preprocessor_from_state",
    "register_preprocessor",
]

_REGISTRY: dict[str, type[Preprocessor]] = {}


def register_preprocessor(cls: type[Preprocessor]) -> type[Preprocessor]:
    """Make ``cls`` buildable by its ``name``; a name registered twice raises ``RuntimeError``."""
    if cls.name in _REGISTRY:
        raise RuntimeError(f"preprocessor {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


for _recipe in (Identity, Scale, MeanStd, GCNZCA, GCNLCN, ImageNetPreprocess):
    register_preprocessor(_recipe)


def list_preprocessors() -> list[str]:
    return sorted(_REGISTRY)


def build_preprocessor(name: str, **options) -> Preprocessor:
    """A fresh (unfitted) preprocessor by name; unknown names raise ``ConfigError`` listing valid ones."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown preprocessing {name!r}; valid: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**options)


def preprocessor_from_state(state: dict) -> Preprocessor:
    """Rebuild a fitted preprocessor from :meth:`Preprocessor.state_dict` output."""
    p = build_preprocessor(state["name"], **state.get("options", {}))
    p.load_tensors({k: v for k, v in state.get("tensors", {}).items()})
    return p
