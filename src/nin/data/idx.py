"""MNIST and Fashion-MNIST readers: IDX files (big-endian; magic 0x00000803 images, 0x00000801 labels),
gzipped as downloaded or decompressed, each verified by md5 (the official md5s: :mod:`nin.data.sources`).

Fashion-MNIST is also found where Debian's ``dataset-fashion-mnist`` package installs it
(``/usr/share/datasets/fashion-mnist``); Debian re-gzipped the files, so their decompressed bytes are checked.
"""

from __future__ import annotations

import gzip
import struct
import zlib

import numpy as np

from nin.data.checksums import read_checked
from nin.data.dataset import Dataset
from nin.data.locate import require_files
from nin.data.sources import DIGITS, FASHION_CLASSES, get_source
from nin.errors import DataError

_KIND = {1: "labels", 3: "images"}


def parse_idx(data: bytes, where: str, ndim: int) -> np.ndarray:
    """Decode an IDX array of unsigned bytes with ``ndim`` dimensions (3: images, 1: labels)."""
    magic = f"0x0000080{ndim}"
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise DataError(
            f"{where} is not an IDX file of unsigned bytes (magic {data[:4].hex() or 'none'}, expected {magic})"
        )
    if data[3] != ndim:
        raise DataError(
            f"{where} holds a {data[3]}-d IDX array, but {_KIND[ndim]} are {ndim}-d ({magic}): "
            "are the images and labels files swapped?"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{where} is truncated inside its IDX header ({len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    n = int(np.prod(dims))
    if len(data) - header < n:
        raise DataError(f"{where} is truncated ({len(data):,} of {header + n:,} bytes)")
    if len(data) - header > n:
        raise DataError(f"{where} has {len(data) - header - n:,} bytes after its {dims} array: it is damaged")
    return np.frombuffer(data, np.uint8, count=n, offset=header).reshape(dims)


def gunzip_if_gzipped(data: bytes, where: str) -> bytes:
    """``data`` gunzipped when it is gzip (decided by its magic bytes, not the file's name)."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except EOFError:
        raise DataError(f"{where} is truncated (the gzip stream ends early)") from None
    except (OSError, zlib.error) as exc:
        raise DataError(f"{where} is a damaged gzip file ({exc})") from None


def load_idx_dataset(name: str, split: str, root: str | None = None) -> Dataset:
    """MNIST (``name="mnist"``) or Fashion-MNIST (``"fashion_mnist"``) split ``split``.

    Splits: ``train`` (60,000), ``test`` (10,000); MNIST also ``train50k`` / ``valid`` (first 50,000 /
    last 10,000 training digits, the maxout split).
    """
    source = get_source(name)
    img_name, lab_name = source.split_files[split]
    paths = require_files(source, (img_name, lab_name), root)
    arrays = []
    for n, ndim in ((img_name, 3), (lab_name, 1)):
        # One read per file: the md5 is taken of the bytes that are then parsed (and a re-gzipped copy's
        # content, gunzipped for its md5, is parsed as is).
        data, gunzipped = read_checked(paths[n], source.file(n), source, root)
        content = gunzipped if gunzipped is not None else gunzip_if_gzipped(data, str(paths[n]))
        arrays.append(parse_idx(content, str(paths[n]), ndim))
    images, labels = arrays[0], arrays[1].astype(np.int64)
    if len(images) != len(labels):
        raise DataError(
            f"{paths[img_name]} has {len(images):,} images but {paths[lab_name]} {len(labels):,} labels: "
            "they are not from the same split"
        )
    if len(labels) and labels.max() > 9:
        raise DataError(f"{paths[lab_name]} has label {labels.max()}: not a 10-class IDX labels file")
    if split in ("train50k", "valid"):
        cut = len(labels) - len(labels) // 6
        sl = slice(0, cut) if split == "train50k" else slice(cut, None)
        images, labels = images[sl], labels[sl]
    classes = FASHION_CLASSES if name == "fashion_mnist" else DIGITS
    ds = Dataset.from_numpy(np.require(images, requirements=["C", "W"]), labels, classes, f"{name}:{split}")
    ds.meta.update(source=str(paths[img_name].parent))
    return ds
