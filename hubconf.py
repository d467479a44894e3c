"""torch.hub entry points: ``torch.hub.load(REPO_OR_DIR, "nin_cifar10", source="local", pretrained=...)``.

One entry per model of nin's registry (``torch.hub.list`` shows them). ``pretrained`` is ``False`` (random init, the
builder's options apply), or a file nin loads (``.pt``, ``.safetensors``), a Hub folder written by
``nin export --hub``, or ``hf-hub:ORG/NAME[@REV]``; the weights' recorded build options are then used and must
name the same architecture. Works from a checkout where nin is not installed: the repository's ``src/`` is put on
``sys.path``.
"""

from __future__ import annotations

import os
import sys

dependencies = ["torch", "numpy", "PIL"]

try:
    import nin  # noqa: F401
except ImportError:  # a checkout, not an installed package: torch.hub put only the repository root on sys.path
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from nin.models import build_model as _build_model  # noqa: E402  (private names: torch.hub lists public callables)
from nin.models import describe_model as _describe_model  # noqa: E402
from nin.models import list_models as _list_models  # noqa: E402


def _entry(name: str):
    def entry(pretrained: bool | str = False, **options):
        if not pretrained:
            return _build_model(name, **options)
        if pretrained is True:
            raise ValueError(f"{name}: nin ships no weights; pass pretrained=FILE, a Hub folder or 'hf-hub:ORG/NAME'")
        from nin.errors import CheckpointError
        from nin.hub.pretrained import load_pretrained
        from nin.train.checkpoint import build_from_checkpoint

        ckpt = load_pretrained(pretrained)
        if ckpt["model"]["name"] != name:
            raise CheckpointError(f"{pretrained} holds {ckpt['model']['name']!r}, not {name!r}; load that entry")
        if options:
            ckpt["model"] = {"name": name, "options": {**ckpt["model"].get("options", {}), **options}}
        return build_from_checkpoint(ckpt)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (
        f"{_describe_model(name)}\n\n"
        "Args:\n"
        "    pretrained: False (random init), or a .pt/.safetensors file, a Hub folder or 'hf-hub:ORG/NAME[@REV]'.\n"
        "    **options: build options (num_classes, in_channels, dropout, batch_norm, final_relu, init).\n"
    )
    return entry


for _name in _list_models():
    globals()[_name] = _entry(_name)
del _name
