"""Image folders for the batch-prediction tests: real digits in nested folders, every format, broken files."""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from fixtures.serve.builders import digit, png_bytes

# (suffix, Pillow format, save options): every format prediction reads, with upper-case suffixes too.
FORMATS = [
    (".png", "PNG", {}),
    (".JPG", "JPEG", {"quality": 95}),
    (".jpeg", "JPEG", {"quality": 90}),
    (".bmp", "BMP", {}),
    (".gif", "GIF", {}),
    (".tif", "TIFF", {}),
    (".webp", "WEBP", {"lossless": True}),
]


def write_digits(root: Path, n: int, *, nested: bool = True, mixed: bool = False, start: int = 0) -> list[Path]:
    """``n`` embedded test digits as image files under ``root`` (class/shard sub-folders when nested)."""
    paths = []
    for i in range(start, start + n):
        suffix, fmt, opts = FORMATS[i % len(FORMATS)] if mixed else FORMATS[0]
        folder = root / f"class{i % 3}" / f"part{i % 2}" if nested else root
        folder.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(digit(i % 2000))
        if mixed and i % 5 == 4:
            img = img.convert("RGBA")  # composited on white, then grey: still a valid input
            fmt, suffix, opts = "PNG", ".png", {}
        path = folder / f"{i:05d}{suffix}"
        path.write_bytes(png_bytes(img, fmt, **opts))
        paths.append(path)
    return paths


def write_broken(root: Path) -> list[Path]:
    """A truncated PNG and a text file named like a JPEG: both are picked by suffix and both fail to decode."""
    root.mkdir(parents=True, exist_ok=True)
    truncated = root / "truncated.png"
    truncated.write_bytes(png_bytes(digit(0))[:60])
    fake = root / "notes.jpg"
    fake.write_text("not an image at all\n")
    return [truncated, fake]


def sorted_walk(root: Path) -> list[str]:
    """The order `nin predict` walks a folder in, computed the slow obvious way: sorted names, depth first."""
    out = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.is_dir():
            out += sorted_walk(entry)
        elif entry.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}:
            out.append(str(entry))
    return out


def nin_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "nin", *args]
