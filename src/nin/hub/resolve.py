"""From what a user names (a file, a Hub folder, ``hf-hub:ORG/NAME[@REV]``) to the one file the loaders read.

``hf-hub:`` names resolve through ``huggingface_hub``'s own download functions, so its cache, ``HF_HUB_OFFLINE=1``,
``HF_ENDPOINT``, ``HF_TOKEN`` and revisions behave as everywhere else in that ecosystem. This module imports
neither torch nor huggingface_hub until a Hub name is resolved.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from nin.errors import CheckpointError

HF_PREFIX = "hf-hub:"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
LABELS = "labels.json"
CARD = "README.md"


def is_hub_name(name: str | os.PathLike) -> bool:
    """Whether ``name`` is an ``hf-hub:ORG/NAME[@REV]`` reference (not a path on disk)."""
    return str(name).startswith(HF_PREFIX)


def parse_hub_name(name: str, revision: str | None = None) -> tuple[str, str | None]:
    """``hf-hub:ORG/NAME@REV`` (or ``ORG/NAME``) -> (repo id, revision); ``revision`` wins over ``@REV``."""
    text = str(name).removeprefix(HF_PREFIX)
    repo, _, rev = text.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise CheckpointError(f"{name!r} is not a Hub model name; write hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION")
    return repo, revision or rev or None


def download(
    repo_id: str,
    revision: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
) -> Path:
    """The weights of a Hub repo in the huggingface_hub cache (``config.json`` and ``labels.json`` beside them)."""
    from nin.extras import require

    hub = require("huggingface_hub", f"loading hf-hub:{repo_id}")
    errors = require("huggingface_hub.errors", f"loading hf-hub:{repo_id}", package="huggingface_hub")
    where = f"hf-hub:{repo_id}" + (f"@{revision}" if revision else "")
    kw = dict(
        repo_id=repo_id,
        revision=revision,
        cache_dir=cache_dir,
        token=token,
        force_download=force_download,
        local_files_only=local_files_only,
        library_name="nin",
    )
    try:
        weights = Path(hub.hf_hub_download(filename=WEIGHTS, **kw))
        hub.hf_hub_download(filename=CONFIG, **kw)
        with contextlib.suppress(errors.EntryNotFoundError):  # optional: config.json carries the labels too
            hub.hf_hub_download(filename=LABELS, **kw)
    except errors.LocalEntryNotFoundError:
        raise CheckpointError(
            f"{where} is not in the Hugging Face cache and the Hub cannot be reached (HF_HUB_OFFLINE=1 or no network); "
            "download it once online"
        ) from None
    except errors.RepositoryNotFoundError:
        raise CheckpointError(
            f"{where}: no such model repository on the Hub (or it is private: set HF_TOKEN)"
        ) from None
    except errors.RevisionNotFoundError:
        raise CheckpointError(f"{where}: the repository has no such revision (branch, tag or commit)") from None
    except errors.EntryNotFoundError:
        raise CheckpointError(f"{where} holds no {WEIGHTS} or {CONFIG}; it is not a nin Hub folder") from None
    except errors.HfHubHTTPError as exc:
        raise CheckpointError(f"{where}: the Hub answered {str(exc).splitlines()[0]}") from None
    return weights


def resolve_model_file(name: str | os.PathLike, revision: str | None = None) -> Path:
    """The file to load for ``name``: ``hf-hub:`` ids are downloaded (or found in the cache), a Hub folder gives
    its ``model.safetensors``, anything else is returned as the path it is."""
    if is_hub_name(name):
        return download(*parse_hub_name(str(name), revision))
    path = Path(name)
    if path.is_dir() and (path / WEIGHTS).is_file():
        return path / WEIGHTS
    return path
