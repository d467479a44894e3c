"""CIFAR-10 and CIFAR-100 readers: the python batches (through a restricted unpickler) and the binary
version (3073-byte records: label + 3072 pixels; CIFAR-100: 3074 bytes, coarse + fine label + pixels).

Either format is read from the downloaded ``.tar.gz`` directly or from the folder it unpacks to; the
archive md5 (and, for the python batches, each batch's md5) is checked against the official ones
(https://www.cs.toronto.edu/~kriz/cifar.html; :mod:`nin.data.sources`).
"""

from __future__ import annotations

import numpy as np

from nin.data.dataset import Dataset
from nin.data.locate import find_archive, missing_error, read_members
from nin.data.sources import CIFAR10_CLASSES, CIFAR100_CLASSES, get_source
from nin.data.unpickle import as_str_keys, safe_unpickle
from nin.errors import DataError

PIXELS = 3 * 32 * 32


def parse_python_batch(data: bytes, where: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (uint8 (N, 3, 32, 32), int64 (N,)); ``label_key``: labels | fine_labels."""
    d = as_str_keys(safe_unpickle(data, where), where)
    if "data" not in d or label_key not in d:
        raise DataError(f"{where} lacks {'data' if 'data' not in d else label_key!r}: it is not a CIFAR batch")
    x = d["data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != PIXELS:
        what = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{where}: 'data' is {what}, not uint8 (N, {PIXELS}): it is not a CIFAR batch")
    y = np.asarray(d[label_key])
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: {len(y)} labels for {len(x)} images: the batch is damaged")
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


def parse_binary_batch(data: bytes, where: str, label_bytes: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-size records: ``label_bytes`` label bytes (the last one is the label we use) + 3072 pixels."""
    record = label_bytes + PIXELS
    if len(data) == 0 or len(data) % record:
        raise DataError(
            f"{where} has {len(data):,} bytes, not a whole number of {record}-byte records: it is truncated "
            f"or not a {'CIFAR-100' if label_bytes == 2 else 'CIFAR-10'} binary file"
        )
    a = np.frombuffer(data, np.uint8).reshape(-1, record)
    labels = a[:, label_bytes - 1].astype(np.int64)
    if int(labels.max()) >= num_classes:
        raise DataError(f"{where} has label {int(labels.max())} >= {num_classes}: it is not this dataset's file")
    return a[:, label_bytes:].reshape(-1, 3, 32, 32), labels


def load_cifar(name: str, split: str, root: str | None = None) -> Dataset:
    """CIFAR-10 (``name="cifar10"``) or CIFAR-100 (``"cifar100"``, fine labels) split ``split``.

    Splits: ``train`` (50,000), ``test`` (10,000), and the paper's tuning split (§4.2):
    ``train40k`` / ``valid`` = the first 40,000 / last 10,000 training images.
    """
    source = get_source(name)
    found = find_archive(source, root)
    if found is None:
        raise missing_error(source, root, [source.archives[0].file.name])
    members = source.split_files[split]
    hundred = name == "cifar100"
    kind = found.archive.kind
    names = members if kind == "python" else tuple(m + ".bin" for m in members)
    raw = read_members(found, names, source, root)
    parts = []
    for n in names:
        where = f"{found.path}:{n}" if not found.extracted else str(found.path / n)
        if kind == "python":
            parts.append(parse_python_batch(raw.pop(n), where, "fine_labels" if hundred else "labels"))
        else:
            parts.append(parse_binary_batch(raw.pop(n), where, 2 if hundred else 1, 100 if hundred else 10))
    x = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    y = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    if hundred and split in ("train40k", "valid"):
        # Deviation from paper: the 40k/10k tuning split's indices are not published; we hold out the last
        # fifth of the training file (as data_batch_5 for CIFAR-10).
        cut = len(y) - len(y) // 5
        x, y = (x[:cut], y[:cut]) if split == "train40k" else (x[cut:], y[cut:])
    classes = CIFAR100_CLASSES if hundred else CIFAR10_CLASSES
    ds = Dataset.from_numpy(np.require(x, requirements=["C", "W"]), y, classes, f"{name}:{split}")
    ds.meta.update(source=str(found.path), format=kind)
    return ds
