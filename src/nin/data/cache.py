"""A small on-disk cache of fitted preprocessing statistics (the ZCA matrix takes minutes to fit on CIFAR).

Entries are keyed by the *content* of the training images plus the preprocessor's name and options, so a
rerun on the same split (any dataset, any path) reuses them and anything else refits. Files are written
atomically and read with ``torch.load(weights_only=True)``; a damaged entry is ignored and refit.
Location: ``$NIN_CACHE_DIR``, else ``$XDG_CACHE_HOME/nin`` (``~/.cache/nin``), sub-folder ``preprocess/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from nin.atomic import atomic_open

log = logging.getLogger(__name__)

FORMAT = 1  # bump when a preprocessor's fitted statistics change meaning


def cache_dir() -> Path:
    env = os.environ.get("NIN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nin"


def fit_key(name: str, options: dict, images: torch.Tensor) -> str:
    """File name of the entry for preprocessor ``name`` with ``options`` fit on ``images`` (uint8 N, C, H, W)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"name": name, "options": options, "format": FORMAT}, sort_keys=True).encode())
    x = images.detach().cpu().contiguous()
    h.update(str((tuple(x.shape), str(x.dtype))).encode())
    h.update(memoryview(x.numpy()).cast("B"))
    opts = "-".join(f"{k}{v}" for k, v in sorted(options.items()))
    shape = "x".join(str(s) for s in x.shape)
    return f"{name}-{opts}-{shape}-{h.hexdigest()}.pt"


def load(key: str) -> dict[str, torch.Tensor] | None:
    path = cache_dir() / "preprocess" / key
    if not path.is_file():
        return None
    try:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged entry must never stop training: refit instead
        log.warning("ignoring damaged preprocessing cache %s (%s); refitting", path, type(exc).__name__)
        return None
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        log.warning("ignoring foreign preprocessing cache %s; refitting", path)
        return None
    log.info("using fitted preprocessing statistics from %s", path)
    return tensors


def save(key: str, tensors: dict[str, torch.Tensor]) -> Path | None:
    """Write an entry atomically; a read-only or full disk only costs a refit next time (logged)."""
    folder = cache_dir() / "preprocess"
    try:
        with atomic_open(folder / key) as f:
            torch.save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, f)
    except OSError as exc:
        log.warning("cannot write the preprocessing cache in %s (%s); the fit will be redone next time", folder, exc)
        return None
    return folder / key
