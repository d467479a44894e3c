"""What to predict: image files, folders walked recursively, and ``@LIST`` files of paths, as one stream.

Everything here is a generator: a folder of a million images or a list of a million lines is never held in
memory. A folder is walked depth first; each directory's entries are sorted by name and visited in that order
(files and sub-folders interleaved), so the order is the same on every run and every machine. Only one sorted
listing per open directory is held at a time.
"""

from __future__ import annotations

import heapq
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
    folder whose (device, inode) was already entered is skipped. While a folder is walked, the names of its
    image files and sub-folders are held (about 80 bytes each); other files are dropped as they are listed.
    """
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[str, Iterator[tuple[str, bool]]]] = []
    root = os.fspath(root)
    listing = _listing(root, seen)
    if listing is not None:
        stack.append((root, listing))
    while stack:
        folder, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        name, is_dir = entry
        path = os.path.join(folder, name)
        if not is_dir:
            yield path
            continue
        listing = _listing(path, seen)
        if listing is not None:
            stack.append((path, listing))


def _listing(folder: str, seen: set[tuple[int, int]]) -> Iterator[tuple[str, bool]] | None:
    """``(name, is_folder)`` of a folder's image files and sub-folders in name order; None if entered before."""
    files, folders = [], []
    try:
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            return None
        seen.add((st.st_dev, st.st_ino))
        with os.scandir(folder) as it:
            for entry in it:
                try:
                    is_dir = entry.is_dir()  # follows symlinks; no extra stat for plain entries
                except OSError:
                    continue
                if is_dir:
                    folders.append(entry.name)
                elif is_image_name(entry.name):
                    files.append(entry.name)
    except OSError:  # an unreadable folder: its files cannot be listed, so they get no rows
        return None
    files.sort()
    folders.sort()
    return heapq.merge(((n, False) for n in files), ((n, True) for n in folders))


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
