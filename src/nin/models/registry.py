"""A small strict model registry: ``register_specs`` adds a table of variants, ``build_model`` builds one by name.

A spec's ``build`` declares every option it takes as a keyword parameter (no ``**kwargs``), so ``build_model``
can tell a misspelt option from an error inside the builder.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Protocol

import torch.nn as nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_DOCS: dict[str, str] = {}


class ModelSpec(Protocol):
    """A model variant: a one-line description and a builder taking keyword options."""

    doc: str

    def build(self, **options) -> nn.Module: ...


def register_specs(table: Mapping[str, ModelSpec]) -> None:
    """Register every variant of ``table`` under its name; a duplicate name is a programming error."""
    for name, spec in table.items():
        if name in _BUILDERS:
            raise RuntimeError(f"model {name!r} is registered twice")
        _BUILDERS[name] = spec.build
        _DOCS[name] = spec.doc.strip().splitlines()[0] if spec.doc.strip() else ""


def list_models() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_BUILDERS)


def describe_model(name: str) -> str:
    """The model's one-line description."""
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
            Errors raised inside the builder (a bad value, say) pass through unchanged.
    """
    _check(name)
    builder = _BUILDERS[name]
    signature = inspect.signature(builder)
    try:
        signature.bind(**overrides)
    except TypeError as exc:
        valid = ", ".join(signature.parameters)
        raise ValueError(f"bad options for model {name!r}: {exc}; valid options: {valid}") from None
    return builder(**overrides)
