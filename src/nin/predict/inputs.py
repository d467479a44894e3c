"""What to predict: image files, folders walked recursively, and ``@LIST`` files of paths, as one stream.

Everything here is a generator: a folder of a million images or a list of a million lines is never held in
memory. A folder is walked depth first; each directory's entries are sorted by name and visited in that order
(files and sub-folders interleaved), so the order is the same on every run and every machine. Only one sorted
listing per open directory is held at a time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from nin.data.images import IMAGE_SUFFIXES
from nin.errors import ConfigError

STDIN_LIST = "@-"  # read the list of paths from standard input


def is_image_name(name: str) -> bool:
    """Whether a file name has one of the image suffixes prediction reads (case-insensitive)."""
    return name.lower().endswith(IMAGE_SUFFIXES)


def walk_folder(root: str | os.PathLike) -> Iterator[str]:
    """Image files under ``root``, recursively, in sorted order; symlinked folders are followed once.

    A symlink loop (or two links to the same folder) cannot make the walk run forever or repeat files: a
    folder whose (device, inode) was already entered is skipped.
    """
    root = os.fspath(root)
    seen: set[tuple[int, int]] = set()

    def enter(folder: str) -> list[os.DirEntry] | None:
        try:
            st = os.stat(folder)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                return None
            seen.add(key)
            with os.scandir(folder) as it:
                return sorted(it, key=lambda e: e.name)
        except OSError:  # unreadable folder: its files cannot be listed, so they get no rows
            return None

    stack: list[Iterator[os.DirEntry]] = []
    first = enter(root)
    if first is not None:
        stack.append(iter(first))
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            continue
        if is_dir:
            listing = enter(entry.path)
            if listing is not None:
                stack.append(iter(listing))
        elif is_image_name(entry.name):
            yield entry.path


def read_list(spec: str) -> Iterator[str]:
    """The paths of a ``@LIST`` file, one per line, streamed (``@-`` reads standard input).

    Blank lines are skipped; surrounding whitespace is not part of a path, except that a line is kept as
    written when stripping it would leave nothing. Each line names an image file; it is used as written.
    """
    if spec == STDIN_LIST:
        yield from _lines(sys.stdin)
        return
    _check_list(spec)
    with open(spec[1:], encoding="utf-8", errors="surrogateescape") as f:
        yield from _lines(f)


def _check_list(spec: str) -> None:
    name = spec[1:]
    if not name:
        raise ConfigError("an input list is written @FILE (one image path per line) or @- for standard input")
    if not os.path.exists(name):
        raise ConfigError(f"the input list {name} does not exist; write one image path per line into it")
    if os.path.isdir(name):
        raise ConfigError(f"the input list {name} is a folder; pass the folder without '@' to walk it")


def _lines(f) -> Iterator[str]:
    for line in f:
        path = line.rstrip("\r\n").strip()
        if path:
            yield path


def expand_inputs(specs: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Image paths, in input order, from files, folders and ``@LIST`` files.

    A file is passed on whatever its suffix (you named it); a folder gives its image files (by suffix), walked
    recursively in sorted order; ``@LIST`` gives its lines. A path that does not exist is passed on too: it
    gets an error row saying so, and the others still run.
    """
    for spec in specs:
        text = os.fspath(spec)
        if isinstance(spec, str) and text.startswith("@"):
            yield from read_list(text)
        elif os.path.isdir(text):
            yield from walk_folder(text)
        else:
            yield text


def check_inputs(specs: Iterable[str | os.PathLike]) -> list[str]:
    """Check the command-line paths before a run starts (one stat each).

    Returns:
        The paths that do not exist (they will get error rows), for an early warning.

    Raises:
        ConfigError: an ``@LIST`` that does not exist or is a folder (nothing could be predicted from it).
    """
    missing = []
    for spec in specs:
        text = os.fspath(spec)
        if isinstance(spec, str) and text.startswith("@"):
            if text != STDIN_LIST:
                _check_list(text)
        elif not Path(text).exists():
            missing.append(text)
    return missing
