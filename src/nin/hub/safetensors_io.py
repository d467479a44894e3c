"""A nin checkpoint as one ``.safetensors`` file, read without unpickling anything.

Layout (shared with the timm registration, see docs/pretrained.md):

- tensors: the model's ``state_dict()`` under its own keys, plus the Preprocessor's tensors (ZCA matrix, mean
  image, ...) under ``preprocess.<name>``; a plain ``safetensors.torch.load_file`` + ``load_state_dict`` after
  dropping the ``preprocess.*`` keys rebuilds the model;
- string metadata: ``"format": "pt"`` (what the Hub and timm expect) and ``"nin"``: one JSON string with
  everything else the checkpoint holds (format_version, kind, nin_version, model spec, preprocess name and
  options, classes, input, metrics, train config, source).

The header is checked here before the safetensors library reads the file, so a damaged, truncated or foreign file
(a pickle renamed ``.safetensors``) is one line saying which; the weights are checked against the named
architecture before they are loaded.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch

from nin.atomic import atomic_open
from nin.errors import CheckpointError, ConfigError
from nin.extras import require

# The checkpoint format the metadata describes: nin.train.checkpoint's FORMAT_VERSION and KIND (which imports this
# module to dispatch; tests/test_safetensors.py holds the two equal).
FORMAT_VERSION = 1
KIND = "nin-checkpoint"
PREFIX = "preprocess."
META_KEY = "nin"
# Entries of a checkpoint that never go into a Hub file: resumable training state (optimizer moments, RNG).
NOT_EXPORTED = ("state_dict", "resume")
MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit
DTYPES = {"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "F16", "BF16", "F32", "F64"}
DTYPES |= {"F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"}


def is_safetensors(path: str | os.PathLike) -> bool:
    """Whether ``path`` is meant as a safetensors file: its suffix, or a header that reads as one."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        return True
    try:
        with path.open("rb") as f:
            head = f.read(9)
        size = path.stat().st_size
    except OSError:
        return False
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= min(size - 8, MAX_HEADER)


def _json_ready(value, where: str):
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"checkpoint entry {where!r} cannot be written as JSON metadata ({exc})") from None
    return value


def checkpoint_metadata(ckpt: dict) -> dict:
    """Everything a checkpoint holds besides tensors, as plain JSON data (the ``nin`` metadata entry)."""
    meta = {k: _json_ready(v, k) for k, v in ckpt.items() if k not in (*NOT_EXPORTED, "preprocess")}
    pre = ckpt.get("preprocess") or {}
    meta["preprocess"] = {
        "name": pre.get("name", "none"),
        "options": _json_ready(dict(pre.get("options") or {}), "preprocess.options"),
    }
    return meta


def checkpoint_tensors(ckpt: dict) -> dict[str, torch.Tensor]:
    """The model's weights under their own keys and the Preprocessor's tensors under ``preprocess.<name>``."""
    tensors: dict[str, torch.Tensor] = {}
    for key, value in ckpt["state_dict"].items():
        if key.startswith(PREFIX):
            raise ConfigError(f"model weight {key!r} starts with {PREFIX!r}, which names preprocessing tensors")
        tensors[key] = value.detach().cpu().contiguous().clone()  # clone: no shared storage (refused by the format)
    for key, value in ((ckpt.get("preprocess") or {}).get("tensors") or {}).items():
        tensors[PREFIX + key] = torch.as_tensor(value).detach().cpu().contiguous().clone()
    return tensors


def save_safetensors(ckpt: dict, path: str | os.PathLike) -> Path:
    """Write ``ckpt`` (a dict as :func:`nin.train.checkpoint.load_checkpoint` returns) as one safetensors file.

    Resumable state (optimizer, RNG) is left out: the file is for inference and publishing. The write is atomic.
    """
    st = require("safetensors.torch", "writing safetensors files", package="safetensors")
    meta = {"format": "pt", META_KEY: json.dumps(checkpoint_metadata(ckpt), sort_keys=True)}
    data = st.save(checkpoint_tensors(ckpt), metadata=meta)
    path = Path(path)
    with atomic_open(path) as f:
        f.write(data)
    return path


def _not_safetensors(path: Path, head: bytes, n: int, size: int) -> str:
    """Why a file whose first bytes are not a safetensors header is refused, in one line."""
    if head.startswith(b"PK\x03\x04"):
        return (
            f"{path} is a PyTorch zip (pickle) file, not safetensors; refusing to unpickle it "
            "(convert a trusted .pt with `nin export CKPT --format safetensors`)"
        )
    if (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or head[:1] in (b"c", b"(", b"}"):
        return f"{path} is a Python pickle, not safetensors; refusing to load it (unpickling could run code)"
    if n < 0:
        return f"{path} is truncated ({size} bytes): a safetensors file starts with an 8-byte header size"
    if 0 < n <= min(MAX_HEADER, size - 8):
        return f"{path} has a garbled safetensors header (not JSON): the file is damaged"
    return (
        f"{path} is not a safetensors file or is truncated: its header size field says {n} bytes, "
        f"the file has {max(size - 8, 0)} after it"
    )


def read_header(path: Path) -> dict:
    """The file's JSON header, checked against its size; a file that is not safetensors is one clear line."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(9)
        n = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else -1
        if not (0 < n <= min(MAX_HEADER, size - 8) and head[8:9] == b"{"):
            raise CheckpointError(_not_safetensors(path, head, n, size))
        f.seek(8)
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path} has a garbled safetensors header (not JSON): the file is damaged") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} has a safetensors header that is not a JSON object: the file is damaged")
    data_size = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        ok = isinstance(info, dict) and info.get("dtype") in DTYPES and isinstance(info.get("shape"), list)
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not ok or not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise CheckpointError(f"{path}: tensor {name!r} has a malformed header entry; the file is damaged")
        if not 0 <= offsets[0] <= offsets[1] <= data_size:
            raise CheckpointError(
                f"{path} is truncated: tensor {name!r} ends at byte {offsets[1]} of {data_size} data bytes"
            )
    return header


def _nin_metadata(path: Path, header: dict) -> dict:
    """The ``nin`` entry of the file, else the ``nin`` block of a ``config.json`` beside it."""
    meta = header.get("__metadata__") or {}
    text = meta.get(META_KEY) if isinstance(meta, dict) else None
    if text is not None:
        try:
            info = json.loads(text)
        except json.JSONDecodeError:
            raise CheckpointError(f"{path}: its 'nin' metadata is not valid JSON; the file is damaged") from None
        where = "its 'nin' metadata"
    else:
        from nin.hub.config import read_config_json

        info, where = read_config_json(path), "config.json beside it"
    if not isinstance(info, dict) or "model" not in info or not isinstance(info["model"], dict):
        raise CheckpointError(f"{path}: {where} names no model ({{'model': {{'name': ...}}}} is missing)")
    return info


def check_architecture(path: Path, info: dict, shapes: dict[str, list[int]]) -> None:
    """Refuse a model name nin does not know, and weights whose keys or shapes do not fit the named model."""
    from nin.models import build_model, list_models

    spec = info["model"]
    name = spec.get("name")
    if name not in list_models():
        raise CheckpointError(
            f"{path} holds a {name!r} model, which is not a nin architecture (nin has: {', '.join(list_models())})"
        )
    try:
        with torch.device("meta"):  # shapes only: no memory, no init cost
            want = {k: list(v.shape) for k, v in build_model(name, **spec.get("options", {})).state_dict().items()}
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} names model options this nin cannot build: {exc}") from None
    missing = [k for k in want if k not in shapes]
    extra = [k for k in shapes if k not in want]
    if missing or extra:
        what = f"lacks {', '.join(missing[:3])}" if missing else f"has unknown weights {', '.join(extra[:3])}"
        raise CheckpointError(f"{path}: the weights do not fit {name!r}: the file {what}")
    for key, shape in want.items():
        if shapes[key] != shape:
            raise CheckpointError(
                f"{path}: weight {key!r} has shape {tuple(shapes[key])}, but {name!r} needs {tuple(shape)}"
            )


def load_safetensors(path: str | os.PathLike) -> dict:
    """Read a safetensors file written by :func:`save_safetensors` (or a Hub folder's ``model.safetensors``).

    Returns:
        A checkpoint dict shaped as :func:`nin.train.checkpoint.load_checkpoint`'s result.

    Raises:
        CheckpointError: one line, for a damaged/truncated/pickle file, missing metadata and config.json, an
            architecture nin does not know, or weights of the wrong shapes. Nothing in the file is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; write one with `nin export CKPT --format safetensors`")
    header = read_header(path)
    info = _nin_metadata(path, header)
    shapes = {k: v["shape"] for k, v in header.items() if k != "__metadata__" and not k.startswith(PREFIX)}
    check_architecture(path, info, shapes)
    st = require("safetensors.torch", "reading safetensors files", package="safetensors")
    try:
        tensors = st.load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError: anything the checks above let through
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable safetensors file ({first})") from None
    ckpt = dict(info)
    ckpt.setdefault("format_version", FORMAT_VERSION)
    ckpt.setdefault("kind", KIND)
    pre = dict(info.get("preprocess") or {"name": "none", "options": {}})
    given = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in (pre.get("tensors") or {}).items()}
    pre["tensors"] = {**given, **{k[len(PREFIX) :]: v for k, v in tensors.items() if k.startswith(PREFIX)}}
    ckpt["preprocess"] = pre
    ckpt["state_dict"] = {k: v for k, v in tensors.items() if not k.startswith(PREFIX)}
    missing = [k for k in ("classes", "input") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: its nin metadata lacks {', '.join(missing)}; the file is incomplete")
    if int(ckpt["format_version"]) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has nin format {ckpt['format_version']}, newer than this nin reads; upgrade nin")
    return ckpt
