"""Users' own images: one sub-folder per class holding PNG/JPEG (or GIF, BMP, TIFF, WebP) files.

Two layouts: ``DIR/train/<class>/*`` + ``DIR/test/<class>/*`` (the given splits), or ``DIR/<class>/*``,
split 80/20 per class with a fixed seed. Images are converted to the model's channels and resized
(bilinear) to its input size, decoded and converted as prediction does (:func:`nin.data.images.open_image`:
EXIF orientation applied, first frame, size caps; then :func:`nin.data.images.pil_to_tensor`), so a rotated
photo is seen the same way in training and in prediction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nin.data.dataset import Dataset, stratified_split
from nin.data.images import IMAGE_SUFFIXES, SAFE_FORMATS, open_image, pil_to_tensor
from nin.errors import DataError

# The serving caps (12,000 px a side, 40 MP) guard against hostile uploads; a user's own folder may hold
# panoramas and 100-MP phone photos, so only Pillow's decompression-bomb limit applies here.
MAX_SIDE = 1 << 16
TEST_FRACTION = 0.2
SPLIT_SEED = 20131216


def class_folders(path: Path) -> dict[str, list[Path]]:
    """Class name -> sorted image files, for every sub-folder of ``path`` holding at least one image."""
    out = {}
    for d in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            out[d.name] = files
    return out


def has_given_splits(path: Path) -> bool:
    """Whether ``path`` has the given-splits layout (``train/`` and ``test/``); else its sub-folders are classes."""
    return (path / "train").is_dir() and (path / "test").is_dir()


def inspect_image_folder(root: str | Path) -> dict:
    """What ``nin data info imagefolder --root DIR`` shows: images per class folder of each split found.

    Returns:
        ``{"root", "classes": {split: {class: n_images}}, "ready"}``; the splits are ``train`` and ``test``
        when the folder has both layouts' sub-folders, else ``all``.
    """
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist")
    if has_given_splits(path):
        layout = {s: class_folders(path / s) for s in ("train", "test")}
    else:
        layout = {"all": class_folders(path)}
    counts = {s: {c: len(f) for c, f in folders.items()} for s, folders in layout.items()}
    return {"root": str(path), "classes": counts, "ready": all(counts.values())}


def _decode(files: list[Path], channels: int, size: tuple[int, int]) -> torch.Tensor:
    out = torch.empty((len(files), channels, *size), dtype=torch.uint8)
    for i, f in enumerate(files):
        try:
            with open_image(f, formats=SAFE_FORMATS, max_pixels=Image.MAX_IMAGE_PIXELS, max_side=MAX_SIDE) as img:
                out[i] = pil_to_tensor(img, channels, size)
        except DataError as exc:  # names the file and what is wrong with it
            raise DataError(f"{exc}; remove or replace it") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"{f} cannot be converted to an image tensor ({exc}); remove or replace it") from None
    return out


def load_image_folder(
    root: str | Path | None, split: str = "train", channels: int = 3, size: tuple[int, int] = (32, 32)
) -> Dataset:
    """Split ``split`` (train | test | all) of the image folder ``root`` as uint8 (N, channels, *size)."""
    if not root:
        raise DataError(
            "the image-folder dataset reads your own images: pass the folder with --set data_root=DIR "
            "(nin train) or --data-root DIR, where DIR holds one sub-folder per class of PNG/JPEG files"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist or is not a folder")
    given = has_given_splits(path)
    if given:
        train_classes = class_folders(path / "train")
        classes = tuple(train_classes)
        if split == "all":
            test_classes = class_folders(path / "test")
            folders = {c: train_classes.get(c, []) + test_classes.get(c, []) for c in classes}
            extra = set(test_classes) - set(classes)
        else:
            folders = train_classes if split == "train" else class_folders(path / "test")
            extra = set(folders) - set(classes)
        if extra:
            raise DataError(f"{path}/test has classes {sorted(extra)} that {path}/train lacks")
    else:
        folders = class_folders(path)
        classes = tuple(folders)
    if not classes:
        where = path / "train" if given else path
        raise DataError(
            f"no class sub-folders with {'/'.join(e[1:].upper() for e in IMAGE_SUFFIXES)} images in {where}; "
            "put each class's images in a sub-folder named after the class"
        )
    files = [f for c in classes for f in folders.get(c, [])]
    labels = np.array([i for i, c in enumerate(classes) for _ in folders.get(c, [])], dtype=np.int64)
    if not given and split != "all":
        train_idx, test_idx = stratified_split(labels, TEST_FRACTION, SPLIT_SEED)
        keep = train_idx if split == "train" else test_idx
        files, labels = [files[i] for i in keep], labels[keep]
    ds = Dataset(_decode(files, channels, size), torch.from_numpy(labels), classes, f"imagefolder:{split}")
    ds.meta.update(source=str(path))
    return ds
