"""``nin export CKPT --hub DIR``: a folder laid out as a Hugging Face Hub model repository.

``model.safetensors`` (:mod:`nin.hub.safetensors_io`), ``config.json`` (:mod:`nin.hub.config`), ``README.md``
(:mod:`nin.hub.card`) and ``labels.json`` (the class names, in output order). The folder is read back and its
logits are compared with the checkpoint's before the export reports success.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from nin.atomic import write_bytes
from nin.errors import CheckpointError, ConfigError
from nin.hub.resolve import CARD, CONFIG, LABELS, WEIGHTS

FILES = (WEIGHTS, CONFIG, CARD, LABELS)
PARITY_LIMIT = 1e-6


@dataclass(frozen=True)
class HubFolder:
    """What an export wrote, and how closely the folder reproduces the checkpoint."""

    path: Path
    files: tuple[str, ...]
    max_abs_diff: float  # logits of the folder's model vs the checkpoint's, on random inputs
    metrics: dict  # the measured metrics the card states


def _json(data) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def logits_parity(a: dict, b: dict, n: int = 4, seed: int = 0) -> float:
    """Max abs difference of two checkpoints' logits on the same random inputs (eval mode, CPU, fp32)."""
    from nin.train.checkpoint import build_from_checkpoint

    c, h, w = (int(a["input"][k]) for k in ("channels", "height", "width"))
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return float((build_from_checkpoint(a)(x) - build_from_checkpoint(b)(x)).abs().max())


def export_hub_folder(
    checkpoint: str | os.PathLike | dict,
    out_dir: str | os.PathLike,
    *,
    repo_id: str | None = None,
    license: str | None = None,
) -> HubFolder:
    """Write the Hub folder of a checkpoint (a path nin loads, or a checkpoint dict).

    Args:
        checkpoint: a ``.pt``/``.safetensors`` file, a Hub folder, ``hf-hub:...``, or a loaded checkpoint.
        out_dir: the folder to write (created; nin's four files in it are replaced).
        repo_id: ``ORG/NAME`` the card's snippets use (default: ``ORG/<folder name>``).
        license: the licence the card states (default: ``mit`` for nin-trained weights, ``other`` for imports).
    """
    from nin.hub.card import build_card, measured
    from nin.hub.config import hub_config
    from nin.hub.safetensors_io import checkpoint_metadata, load_safetensors, save_safetensors
    from nin.train.checkpoint import load_checkpoint

    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--hub {out} is a file; name a folder to write the Hub repository into")
    out.mkdir(parents=True, exist_ok=True)
    repo = repo_id or f"ORG/{out.resolve().name}"
    if repo.count("/") != 1:
        raise ConfigError(f"repo id {repo!r} is not ORG/NAME")
    save_safetensors(ckpt, out / WEIGHTS)
    config = hub_config(ckpt, checkpoint_metadata(ckpt))
    write_bytes(out / CONFIG, _json(config))
    write_bytes(out / LABELS, _json(list(ckpt["classes"])))
    write_bytes(out / CARD, str(build_card(ckpt, config, repo, license)).encode("utf-8"))
    diff = logits_parity(ckpt, load_safetensors(out / WEIGHTS))
    if not diff <= PARITY_LIMIT:
        raise CheckpointError(f"{out / WEIGHTS} does not reproduce the checkpoint (max abs logit diff {diff:.3g})")
    return HubFolder(out, FILES, diff, measured(ckpt.get("metrics") or {}))


def check_hub_folder(folder: str | os.PathLike) -> dict:
    """Validate a Hub folder before it is uploaded; returns its config. One-line errors name what is wrong."""
    from nin.extras import require
    from nin.hub.safetensors_io import load_safetensors

    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"{path} is not a folder; write one with `nin export CKPT --hub {path}`")
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}; write the folder with `nin export CKPT --hub {path}`")
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
        labels = json.loads((path / LABELS).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: {CONFIG} or {LABELS} is not valid JSON ({exc})") from None
    ckpt = load_safetensors(path / WEIGHTS)  # full check: header, metadata, architecture, shapes
    if labels != ckpt["classes"] or config.get("label_names") != ckpt["classes"]:
        raise ConfigError(f"{path}: {LABELS} / config.json label_names differ from the weights' classes; re-export")
    if config.get("architecture") != ckpt["model"]["name"]:
        raise ConfigError(f"{path}: config.json names {config.get('architecture')!r}, the weights hold another model")
    hub = require("huggingface_hub", "checking a model card")
    try:
        hub.ModelCard.load(path / CARD)
    except Exception as exc:
        raise ConfigError(f"{path / CARD} is not a valid model card ({str(exc).splitlines()[0]})") from None
    return config
