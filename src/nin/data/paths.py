"""Where nin looks for dataset files and where ``nin data fetch`` puts them.

A dataset lives in ``<data root>/<name>/`` (``<data root>`` itself is searched too, so a folder that
already holds the files works as is). The data root is ``--data-root`` / ``data_root``, else
``$NIN_DATA_ROOT``, else ``$XDG_DATA_HOME/nin/datasets`` (``~/.local/share/nin/datasets``).
"""

from __future__ import annotations

import os
from pathlib import Path

from nin.data.sources import Source


def default_data_root() -> Path:
    """``$NIN_DATA_ROOT``, else ``$XDG_DATA_HOME/nin/datasets`` (``~/.local/share/nin/datasets``)."""
    env = os.environ.get("NIN_DATA_ROOT")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "nin" / "datasets"


def data_root(root: str | os.PathLike | None) -> Path:
    """The data root: ``root`` if given, else :func:`default_data_root`."""
    return Path(root).expanduser() if root else default_data_root()


def dataset_dir(source: Source, root: str | os.PathLike | None) -> Path:
    """The folder ``nin data fetch`` writes into and users put files into by hand."""
    return data_root(root) / source.name


def search_dirs(source: Source, root: str | os.PathLike | None) -> list[Path]:
    """Folders searched for the files, in order: ``<root>/<name>``, ``<root>``, then system folders."""
    base = data_root(root)
    dirs = [base / source.name, base, *(Path(d) for d in source.system_dirs)]
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def fetch_command(source: Source, root: str | os.PathLike | None) -> str:
    """The command that downloads ``source`` into :func:`dataset_dir`: what every "file missing" message offers."""
    return f"nin data fetch {source.name}" + (f" --root {root}" if root else "")


def refetch_advice(source: Source, root: str | os.PathLike | None) -> str:
    """What to do about a damaged or foreign copy of one of ``source``'s files."""
    return f"delete it and run `{fetch_command(source, root)}` (or download it again by hand)"
