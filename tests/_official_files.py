"""Small dataset files in the exact official formats (see nin.data.sources), for the reader and fetch tests.

Each image encodes its index so a test can check order, orientation and which split it landed in.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path
from typing import ClassVar

import numpy as np

from nin.data import sources


def md5(path_or_bytes) -> str:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return hashlib.md5(data).hexdigest()


def images_with_ids(n: int, start: int = 0) -> np.ndarray:
    """uint8 (n, 3, 32, 32): pixel (c, r, col) = (r * 32 + col + 7 * c) % 256, plus the id in pixel (0, 0, 0/1)."""
    r, col = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    base = np.stack([(r * 32 + col + 7 * c) % 256 for c in range(3)]).astype(np.uint8)
    x = np.repeat(base[None], n, axis=0)
    ids = np.arange(start, start + n)
    x[:, 0, 0, 0] = ids % 256
    x[:, 0, 0, 1] = ids // 256
    return x


def ids_of(images) -> np.ndarray:
    a = np.asarray(images)
    return a[:, 0, 0, 0].astype(int) + 256 * a[:, 0, 0, 1].astype(int)


# --- CIFAR python batches: pickled by Python 2 (protocol 2, str = SHORT_BINSTRING, numpy.core) ------------
class _Py2Pickler(pickle._Pickler):
    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        b = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(b) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(b)]) + b)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(b)) + b)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def cifar_python_batch(x: np.ndarray, labels: np.ndarray, hundred: bool = False) -> bytes:
    d = {b"batch_label": b"training batch 1 of 5", b"data": x.reshape(len(x), -1)}
    if hundred:
        d[b"fine_labels"] = [int(v) for v in labels]
        d[b"coarse_labels"] = [int(v) // 5 for v in labels]
    else:
        d[b"labels"] = [int(v) for v in labels]
    d[b"filenames"] = [f"img_{i}.png".encode() for i in range(len(x))]
    return py2_pickle(d)


def cifar_binary_batch(x: np.ndarray, labels: np.ndarray, hundred: bool = False) -> bytes:
    rec = [labels[:, None] // 5, labels[:, None]] if hundred else [labels[:, None]]
    return np.concatenate([*(r.astype(np.uint8) for r in rec), x.reshape(len(x), -1)], axis=1).tobytes()


def write_cifar(root: Path, name: str, kind: str, per_batch: int = 6, archive: bool = False) -> dict:
    """Write the CIFAR files of ``name`` (cifar10|cifar100) in format ``kind`` (python|binary) under ``root``.

    Returns {"dir", "path", "members": {name: bytes}, "train": (x, y), "test": (x, y)}.
    """
    source = sources.SOURCES[name]
    spec = next(a for a in source.archives if a.kind == kind)
    hundred = name == "cifar100"
    k = 100 if hundred else 10
    if hundred:
        parts = {"train": 5 * per_batch, "test": per_batch}
    else:
        parts = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": per_batch}
    members, start, out = {}, 0, {"train": [], "test": []}
    for part, n in parts.items():
        x = images_with_ids(n, start)
        y = (np.arange(start, start + n) * 7) % k
        start += n
        fname = part + (".bin" if kind == "binary" else "")
        writer = cifar_binary_batch if kind == "binary" else cifar_python_batch
        members[fname] = writer(x, y, hundred)
        out["test" if "test" in part else "train"].append((x, y))
    folder = root / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    for fname, data in members.items():
        (folder / fname).write_bytes(data)
    path = folder
    if archive:
        path = root / spec.file.name
        with tarfile.open(path, "w:gz") as tar:
            tar.add(folder, arcname=spec.folder)
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    result = {"dir": root, "path": path, "members": members}
    for s in ("train", "test"):
        result[s] = (np.concatenate([p[0] for p in out[s]]), np.concatenate([p[1] for p in out[s]]))
    return result


def trust(monkeypatch, name: str, files: dict[str, bytes | Path]) -> None:
    """Make the official checksums of ``name`` those of the test's files (and forget official sizes)."""
    source = sources.SOURCES[name]

    def fix(spec: sources.FileSpec) -> sources.FileSpec:
        if spec.name not in files:
            return dataclasses.replace(spec, size=None, raw_size=None)
        v = files[spec.name]
        data = v if isinstance(v, bytes) else Path(v).read_bytes()
        raw_md5 = lambda raw: md5(raw) if spec.raw_md5 else None  # noqa: E731  (MNIST publishes none)
        if data[:2] == b"\x1f\x8b" or not spec.name.endswith(".gz"):  # the published form
            try:
                raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else None
            except (EOFError, OSError):  # a damaged .gz on purpose
                raw = None
            return dataclasses.replace(
                spec,
                md5=md5(data),
                size=len(data),
                raw_md5=raw_md5(raw) if raw is not None else None,
                raw_size=len(raw) if raw is not None else None,
            )
        return dataclasses.replace(spec, size=None, raw_md5=raw_md5(data), raw_size=len(data))  # decompressed

    archives = tuple(
        dataclasses.replace(a, file=fix(a.file), members=tuple(fix(m) for m in a.members)) for a in source.archives
    )
    new = dataclasses.replace(source, files=tuple(fix(f) for f in source.files), archives=archives)
    monkeypatch.setitem(sources.SOURCES, name, new)


# --- SVHN ---------------------------------------------------------------------------------------------------
def write_svhn(path: Path, labels: np.ndarray, start: int = 0) -> np.ndarray:
    """A MATLAB v5 file like train_32x32.mat: X (32, 32, 3, N) uint8, y (N, 1) with 10 for digit 0."""
    from scipy.io import savemat

    x = images_with_ids(len(labels), start)  # (N, 3, 32, 32)
    y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)
    savemat(path, {"X": x.transpose(2, 3, 1, 0), "y": y})
    return x


# --- IDX (MNIST, Fashion-MNIST) -----------------------------------------------------------------------------
def idx_bytes(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return struct.pack(">BBBB", 0, 0, 8, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def write_idx_set(folder: Path, n_train: int = 24, n_test: int = 12, gz: bool = True) -> dict:
    """The four MNIST-named IDX files; images (N, 28, 28) with the id in pixel (0, 0)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n, start in (("train", n_train, 0), ("t10k", n_test, 1000)):
        x = np.zeros((n, 28, 28), np.uint8)
        x[:, 0, 0] = np.arange(n) % 256
        x[:, 5:20, 10] = 255
        y = ((np.arange(n) + start) % 10).astype(np.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(arr)
            if gz:
                data, name = gzip.compress(data, mtime=0), name + ".gz"
            (folder / name).write_bytes(data)
            out[name] = folder / name
        out[prefix] = (x, y)
    return out
