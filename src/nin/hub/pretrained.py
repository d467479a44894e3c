"""``nin.from_pretrained``: a NIN from a Hub folder, a Hub repository id or any file nin loads.

It returns the model (an ``nn.Module`` in eval mode), as ``timm.create_model`` and ``torch.hub.load`` do; for the
model with its preprocessing and class names, use ``nin.Predictor.from_checkpoint("hf-hub:ORG/NAME")``, and for
the checkpoint dict itself :func:`load_pretrained`.

Why not ``huggingface_hub.PyTorchModelHubMixin``: its ``save_pretrained`` writes the model's ``__init__`` arguments
as ``config.json`` and its ``from_pretrained`` passes them back to ``__init__``; nin's config.json is the layout timm
reads (architecture, pretrained_cfg) with nin's checkpoint block, and a NIN is built by name from the registry,
not from its constructor. The download itself goes through huggingface_hub's ``hf_hub_download``, so the cache,
``HF_HUB_OFFLINE``, revisions and tokens are the library's.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch.nn as nn

from nin.hub.resolve import HF_PREFIX, download, is_hub_name, parse_hub_name


def _file(
    name: str | os.PathLike,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    token: str | bool | None,
    force_download: bool,
    local_files_only: bool,
) -> Path:
    text = str(name)
    path = Path(name)
    if is_hub_name(text) or (not path.exists() and text.count("/") == 1 and not text.startswith((".", "/"))):
        repo, rev = parse_hub_name(text if is_hub_name(text) else HF_PREFIX + text, revision)
        return download(
            repo,
            rev,
            cache_dir=cache_dir,
            token=token,
            force_download=force_download,
            local_files_only=local_files_only,
        )
    from nin.hub.resolve import resolve_model_file

    return resolve_model_file(path)


def load_pretrained(
    name_or_dir: str | os.PathLike,
    revision: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
) -> dict:
    """The checkpoint dict of a Hub folder, ``ORG/NAME`` / ``hf-hub:ORG/NAME[@REV]`` id, or a nin file."""
    from nin.train.checkpoint import load_checkpoint

    return load_checkpoint(_file(name_or_dir, revision, cache_dir, token, force_download, local_files_only))


def from_pretrained(
    name_or_dir: str | os.PathLike,
    revision: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
) -> nn.Module:
    """A pretrained NIN in eval mode, on the CPU.

    Args:
        name_or_dir: a Hub folder (``nin export --hub``), a Hub id ``ORG/NAME`` or ``hf-hub:ORG/NAME[@REV]``,
            or any checkpoint nin loads (``.pt``, ``.safetensors``).
        revision: branch, tag or commit of a Hub id (wins over ``@REV``).
        cache_dir: huggingface_hub cache folder (default: its own, ``HF_HUB_CACHE``).
        token: Hub token for private repositories (default: huggingface_hub's, ``HF_TOKEN``).
        force_download: download again even if cached.
        local_files_only: use the cache only (as ``HF_HUB_OFFLINE=1`` does for every call).

    Raises:
        CheckpointError: one line, for a repository, revision or file that cannot be found or read.
    """
    from nin.train.checkpoint import build_from_checkpoint

    ckpt = load_pretrained(
        name_or_dir,
        revision,
        cache_dir=cache_dir,
        token=token,
        force_download=force_download,
        local_files_only=local_files_only,
    )
    return build_from_checkpoint(ckpt)
