"""nin: Network In Network (Lin, Chen, Yan 2013) — models, reproduction, explanation and serving."""

from __future__ import annotations

from nin._version import __version__
from nin.integrations import timm_hook as _timm_hook

_timm_hook.install()  # NIN models in timm's registry once timm is imported (stdlib only here; docs/timm.md)

__all__ = ["Predictor", "__version__", "from_pretrained"]


def __getattr__(name: str):
    # Lazy: `import nin` stays free of torch and friends until a heavy name is asked for.
    if name == "Predictor":
        from nin.serve.predictor import Predictor

        return Predictor
    if name == "from_pretrained":
        from nin.hub.pretrained import from_pretrained

        return from_pretrained
    raise AttributeError(f"module 'nin' has no attribute {name!r}")
