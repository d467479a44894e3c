"""``nin data fetch``: download a dataset's official files with progress, resume, md5 check and atomic rename.

A download streams into ``NAME.part`` next to its destination; an interrupted one resumes from there with an
HTTP ``Range`` request. Only a file whose md5 matches the official one is renamed to its real name, so a
half-written or wrong file never sits where the readers look. Offline, the first unreachable host stops the
command at once with a message naming every file to place by hand and the folder to put it in.
"""

from __future__ import annotations

import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from nin._version import __version__
from nin.data.checksums import check_file, md5_file
from nin.data.inventory import human_size, inspect
from nin.data.locate import find_file, manual_files
from nin.data.paths import dataset_dir
from nin.data.sources import FileSpec, Source, get_source
from nin.errors import DataError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 20.0  # per connect / per read; an unreachable host fails at once (DNS, refused) or after this
ATTEMPTS = 4  # reconnections (with Range resume) when a transfer breaks off mid-way


class _Unreachable(Exception):
    """The host could not be reached at all (no network, DNS, refused, connect timeout)."""


class _Broken(Exception):
    """The transfer started but stopped early; resumable."""


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _stream(url: str, part: Path, size: int | None, progress: bool, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (resuming with Range where ``part`` already has bytes)."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # not ours: start over
        part.unlink()
        have = 0
    headers = {"User-Agent": f"nin/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the partial file is complete (md5 decides)
            return
        raise
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Unreachable(str(reason)) from None
    with resp:
        resumed = have > 0 and resp.status == 206
        if have and not resumed:
            log.info("%s ignores Range requests; downloading from the start", url)
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else size
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.name[:-5], leave=False)
        try:
            with open(part, "ab" if resumed else "wb") as f:
                while True:
                    try:
                        chunk = resp.read(CHUNK)
                    except (http.client.IncompleteRead, OSError) as exc:
                        raise _Broken(f"{type(exc).__name__}: {exc}") from None
                    if not chunk:
                        break
                    f.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                f.flush()
                os.fsync(f.fileno())
        finally:
            if bar is not None:
                bar.close()
    got = part.stat().st_size
    if total is not None and got < total:
        raise _Broken(f"connection closed after {got:,} of {total:,} bytes")


def download(
    urls: list[str] | tuple[str, ...],
    dest: str | os.PathLike,
    md5: str,
    size: int | None = None,
    *,
    progress: bool = False,
    timeout: float = TIMEOUT_S,
    attempts: int = ATTEMPTS,
) -> Path:
    """Download ``dest`` from the first of ``urls`` that works and check its md5; return ``dest``.

    Raises:
        DataError: every URL failed. The message says why for each; a partial file is kept as ``dest.part``
            for the next try to resume from, a complete one with the wrong md5 is deleted.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part(dest)
    reasons: list[str] = []
    unreachable = True
    for url in urls:
        for attempt in range(1, attempts + 1):
            try:
                log.info("downloading %s (%s) -> %s", url, human_size(size), dest)
                _stream(url, part, size, progress, timeout)
            except _Unreachable as exc:
                reasons.append(f"{url}: cannot connect ({exc})")
                break
            except urllib.error.HTTPError as exc:
                unreachable = False
                reasons.append(f"{url}: HTTP {exc.code} {exc.reason}")
                break
            except _Broken as exc:
                unreachable = False
                if attempt < attempts:
                    log.warning("%s: %s; resuming (attempt %d of %d)", url, exc, attempt + 1, attempts)
                    continue
                reasons.append(f"{url}: {exc} ({attempts} attempts; the partial file {part} is kept)")
                break
            unreachable = False
            got = md5_file(part)
            if got != md5:
                part.unlink()
                reasons.append(f"{url}: md5 {got}, expected {md5} (the download was deleted)")
                break
            os.replace(part, dest)  # atomic: the real name only ever holds a verified file
            log.info("%s: md5 ok", dest)
            return dest
    raise DataError(
        ("cannot reach " if unreachable else "cannot download ") + f"{dest.name}: " + "; ".join(reasons),
    ) from None


def fetch_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    variant: str | None = None,
    mirrors: list[str] | tuple[str, ...] = (),
    progress: bool = False,
    timeout: float = TIMEOUT_S,
) -> list[Path]:
    """Download the files of dataset ``name`` into ``<root>/<name>/`` (skipping those already there and valid).

    Args:
        name: a dataset with official files (cifar10, cifar100, svhn, mnist, fashion_mnist).
        root: the data root (default: :func:`nin.data.paths.default_data_root`).
        variant: for CIFAR, ``python`` (default) or ``binary``.
        mirrors: base URLs tried before the official ones (each + ``/`` + the file name).
        progress: show a progress bar per file.

    Returns: the paths of the verified files.
    """
    source = get_source(name)
    dest_dir = dataset_dir(source, root)
    state = inspect(source, root, check=True)
    if state["ready"] and (variant is None or all(f.get("variant", variant) == variant for f in state["files"])):
        paths = [Path(f["path"]) for f in state["files"] if f.get("path")]
        log.info("%s is already there and verified: %s", source.title, ", ".join(map(str, paths)))
        return paths
    done: list[Path] = []
    specs = source.fetch_files(variant)
    verified = {Path(f["path"]) for f in state["files"] if f["status"] == "ok" and f.get("path")}
    for i, spec in enumerate(specs):
        have = _already_there(source, spec, root, verified)
        if have is not None:
            log.info("%s is already there and verified: %s", spec.name, have)
            done.append(have)
            continue
        urls = [m.rstrip("/") + "/" + spec.name for m in mirrors] + list(spec.urls)
        try:
            done.append(
                download(urls, dest_dir / spec.name, spec.md5 or "", spec.size, progress=progress, timeout=timeout)
            )
        except DataError as exc:
            raise DataError(f"{exc}. {_by_hand(source, specs[i:], dest_dir)}") from None
    return done


def _already_there(source: Source, spec: FileSpec, root, verified: set[Path]) -> Path | None:
    """The verified copy of ``spec`` if there is one (``verified``: the files inspect() has just checked)."""
    p = find_file(source, spec, root)
    if p is None or p in verified:
        return p
    try:
        check_file(p, spec, source, root)
    except DataError as exc:
        log.warning("%s; downloading it again", exc)
        return None
    return p


def _by_hand(source: Source, remaining: tuple[FileSpec, ...], dest_dir: Path) -> str:
    """The offline instructions: every file still to get, with URL, size and md5, and where to put it."""
    files = "; ".join(f"{s.urls[0] if s.urls else s.name} ({human_size(s.size)}, md5 {s.md5})" for s in remaining)
    alt = ""
    if source.archives:
        others = [f for f in manual_files(source) if f not in remaining]
        if others:
            alt = " (or instead " + "; ".join(f"{f.urls[0]} (md5 {f.md5})" for f in others) + ")"
    return (
        f"If this machine is offline, download by hand {files}{alt}, put the file(s) unchanged in {dest_dir}/, "
        f"then check with `nin data info {source.name}`"
    )
