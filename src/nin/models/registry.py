"""A small strict model registry: ``register`` decorates builders, ``build_model`` calls them by name."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_DOCS: dict[str, str] = {}


def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a builder under its function name; a duplicate name is a programming error."""
    name = fn.__name__
    if name in _BUILDERS:
        raise RuntimeError(f"model {name!r} is registered twice")
    _BUILDERS[name] = fn
    _DOCS[name] = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
    return fn


def list_models() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_BUILDERS)


def describe_model(name: str) -> str:
    """First line of the builder's docstring."""
    _check(name)
    return _DOCS[name]


def _check(name: str) -> None:
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")


def build_model(name: str, **overrides) -> nn.Module:
    """Build a registered model by name.

    Args:
        name: a name from :func:`list_models`.
        **overrides: builder options (``num_classes``, ``in_channels``, ``dropout``, ``batch_norm``,
            ``final_relu``, ``init``); an unknown option raises ``ValueError`` naming the valid ones.
    """
    _check(name)
    try:
        return _BUILDERS[name](**overrides)
    except TypeError as exc:  # an unknown keyword
        raise ValueError(f"bad options for model {name!r}: {exc}") from exc
