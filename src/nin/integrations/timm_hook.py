"""Register the NIN family in timm as soon as both ``nin`` and ``timm`` are imported, in either order.

``import nin`` calls :func:`install`, which must stay cheap and free of torch: when timm is already imported the
models are registered at once; otherwise a one-shot finder on ``sys.meta_path`` wraps timm's loader so that the
registration runs right after ``timm`` finishes importing. timm 1.0 has no plugin entry points, so this hook is
the way in. A failing registration logs a warning and never breaks timm.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
from types import ModuleType

log = logging.getLogger(__name__)


def register_now() -> None:
    """Register every NIN model in timm (idempotent); on any error, warn and leave timm as it was."""
    try:
        from nin.integrations.timm_registry import register_all

        register_all()
    except Exception as exc:  # a broken registration must never break `import timm`
        log.warning("nin: could not register the NIN models in timm (%s: %s)", type(exc).__name__, exc)


class _RegisterAfterLoad(importlib.abc.Loader):
    """timm's own loader, with the registration run once its module finished executing."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _uninstall_finder()  # timm is in: the hook's work is done
        register_now()

    def __getattr__(self, name: str):  # get_resource_reader, is_package, ... of the wrapped loader
        return getattr(self._loader, name)


class _TimmFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: asks the other finders for ``timm`` and wraps the loader they return."""

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "timm":
            return None
        # Stays installed until timm has executed: a bare find_spec("timm") (an availability check) loads nothing.
        for finder in sys.meta_path:
            if isinstance(finder, _TimmFinder):
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisterAfterLoad(spec.loader)
                return spec
        return None


def _uninstall_finder() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TimmFinder)]


def install() -> None:
    """Register now if timm is imported, else arrange for it to happen when timm is (called by ``import nin``)."""
    if "timm" in sys.modules:
        register_now()
        return
    if not any(isinstance(f, _TimmFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TimmFinder())
