"""``nin push DIR ORG/NAME``: upload a checked Hub folder with huggingface_hub (``create_repo`` + ``upload_folder``)."""

from __future__ import annotations

import os
from pathlib import Path

from nin.errors import ConfigError
from nin.extras import require
from nin.hub.folder import FILES, check_hub_folder


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
):
    """Check ``folder`` (:func:`check_hub_folder`), create ``repo_id`` if needed and upload nin's four files.

    Returns:
        huggingface_hub's ``CommitInfo`` of the upload.
    """
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ConfigError(f"repo id {repo_id!r} is not ORG/NAME")
    config = check_hub_folder(folder)
    hub = require("huggingface_hub", "nin push")
    api = hub.HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=str(Path(folder)),
        repo_type="model",
        revision=revision,
        allow_patterns=list(FILES),
        commit_message=commit_message or f"Upload {config['architecture']} with nin",
    )
