"""Self-describing checkpoints: plain types and tensors only, so ``torch.load(weights_only=True)`` reads them.

Layout (``format_version`` 1)::

    format_version, nin_version, kind ("nin-checkpoint"),
    model   {"name", "options"}         -> nin.models.build_model(name, **options)
    state_dict                          model weights
    preprocess                          Preprocessor.state_dict()
    classes [str], input {"channels", "height", "width"}
    train   TrainConfig.to_dict()       (resolved config; {} for imported weights)
    metrics {...}                       last/best metrics
    resume  {epoch, step_in_epoch, global_step, optimizer, schedule, best, epoch_acc}
                                        (resumable checkpoints only: nin.train.resume.ResumeState)

Writes are atomic (temporary file + fsync + rename); the previous ``last.pt`` is kept as ``last.prev.pt``
so a checkpoint damaged on disk still leaves one good copy.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from pathlib import Path

import torch
import torch.nn as nn

from nin._version import __version__
from nin.atomic import atomic_open
from nin.errors import CheckpointError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "nin-checkpoint"
REQUIRED = ("format_version", "kind", "model", "state_dict", "preprocess", "classes", "input")


def make_checkpoint(
    model_name: str,
    model_options: dict,
    model: nn.Module,
    preprocess: dict,
    classes,
    input_shape: tuple[int, int, int],
    train: dict | None = None,
    metrics: dict | None = None,
    resume: dict | None = None,
    extra: dict | None = None,
) -> dict:
    """Assemble a checkpoint dict from its parts (weights are copied to CPU)."""
    c, h, w = input_shape
    state = {k: v.detach().cpu().clone() for k, v in _unwrap(model).state_dict().items()}
    ckpt = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "nin_version": __version__,
        "model": {"name": model_name, "options": dict(model_options)},
        "state_dict": state,
        "preprocess": preprocess,
        "classes": [str(x) for x in classes],
        "input": {"channels": int(c), "height": int(h), "width": int(w)},
        "train": train or {},
        "metrics": metrics or {},
    }
    if resume is not None:
        ckpt["resume"] = resume
    if extra:
        ckpt.update(extra)
    return ckpt


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)  # torch.compile


def save_checkpoint(ckpt: dict, path: str | os.PathLike, keep_previous: bool = False) -> Path:
    """Write atomically: a crash at any instant leaves either the old file or the new one, never half."""
    path = Path(path)
    # Serialised in memory first: torch.save turns a failed write (a full disk) into an opaque RuntimeError,
    # a plain write keeps the OSError that atomic_open reports in one line.
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    with atomic_open(path, keep_previous=previous_path(path) if keep_previous else None) as f:
        f.write(buf.getbuffer())
    return path


def previous_path(path: Path) -> Path:
    return path.with_name(path.stem + ".prev" + path.suffix)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load and validate a checkpoint; anything else raises :class:`CheckpointError` with one clear line.

    ``path`` may also be a ``.safetensors`` file, a Hub folder or ``hf-hub:ORG/NAME[@REV]`` (:mod:`nin.hub`).
    """
    from nin.hub.resolve import resolve_model_file

    path = resolve_model_file(path)  # hf-hub:ORG/NAME and Hub folders -> their model.safetensors
    if not path.exists():
        raise CheckpointError(
            f"checkpoint {path} does not exist; train one with `nin train --out DIR` "
            "or pass the path of a .pt file written by nin"
        )
    if path.is_dir():
        hint = " (did you mean DIR/last.pt?)" if (path / "last.pt").exists() else ""
        raise CheckpointError(f"checkpoint {path} is a folder, not a file{hint}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): the file was not written completely")
    from nin.hub.safetensors_io import is_safetensors, load_safetensors

    if is_safetensors(path):  # read without unpickling, whatever the suffix
        return load_safetensors(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (zipfile.BadZipFile, EOFError, RuntimeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is truncated or not a PyTorch file ({msg})") from None
    except Exception as exc:
        if "Unsupported global" in str(exc) or "GLOBAL " in str(exc):
            raise CheckpointError(
                f"checkpoint {path} contains Python objects other than tensors and plain "
                "data; refusing to load it (it could run code)"
            ) from None
        raise CheckpointError(f"checkpoint {path} is truncated or not a PyTorch file ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != KIND:
        raise CheckpointError(
            f"{path} is a PyTorch file but not a nin checkpoint (no kind={KIND!r}); "
            "import foreign weights with `nin import`"
        )
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}; it is damaged or incomplete")
    if int(ckpt["format_version"]) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {ckpt['format_version']}, newer than this nin "
            f"({__version__}) reads; upgrade nin"
        )
    return ckpt


def load_resumable(run_dir: Path) -> dict | None:
    """The newest good resumable checkpoint of a run: ``last.pt``, else ``last.prev.pt`` with a warning.

    Temporary files left by writes that were killed midway are removed (one process owns a run folder).
    """
    for stale in run_dir.glob(".*.pt.*.tmp"):
        stale.unlink(missing_ok=True)
    last = run_dir / "last.pt"
    for candidate in (last, previous_path(last)):
        if not candidate.exists():
            continue
        try:
            ckpt = load_checkpoint(candidate)
        except CheckpointError as exc:
            log.warning("%s; trying the previous checkpoint", exc)
            continue
        if "resume" not in ckpt:
            log.warning("%s has no resume state; trying the previous checkpoint", candidate)
            continue
        if candidate != last:
            log.warning("resuming from %s because %s is missing or damaged", candidate, last)
        return ckpt
    return None


def build_from_checkpoint(ckpt: dict) -> nn.Module:
    """Rebuild the model described by a checkpoint and load its weights (eval mode)."""
    from nin.models import build_model

    spec = ckpt["model"]
    try:
        model = build_model(spec["name"], **spec.get("options", {}))
    except (ValueError, TypeError) as exc:  # an unknown name or option, or an option of the wrong type
        raise CheckpointError(f"checkpoint names a model this nin cannot build: {exc}") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"checkpoint weights do not fit model {spec['name']!r}: {first}") from None
    return model.eval()
