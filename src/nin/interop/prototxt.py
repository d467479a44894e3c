"""Reading a Caffe ``.prototxt`` (protobuf text format) far enough to check a net's layers.

Only what a NIN definition uses: ``key: value`` pairs, nested ``key { ... }`` messages, ``#`` comments,
quoted strings, numbers and enum names. Both the V1 (``layers { type: CONVOLUTION }``) and the V2
(``layer { type: "Convolution" }``) spellings map to the same :class:`~nin.interop.caffe.Layer`.
"""

from __future__ import annotations

import re
from pathlib import Path

from nin.errors import DataError
from nin.interop.caffe import V1_TYPES, Layer, Net

_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}:\[\],;<>]|[^\s{}:\[\],;<>#"\']+')
_V1_NAMES = {
    "CONVOLUTION": 4,
    "DROPOUT": 6,
    "POOLING": 17,
    "RELU": 18,
    "SOFTMAX_LOSS": 21,
    "SOFTMAX": 20,
    "DATA": 5,
    "ACCURACY": 1,
    "INNER_PRODUCT": 14,
    "LRN": 15,
    "CONCAT": 3,
    "FLATTEN": 8,
    "IMAGE_DATA": 12,
    "MEMORY_DATA": 29,
    "SPLIT": 22,
}

Message = dict[str, list]


def _tokens(text: str, source: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise DataError(f"{source}: cannot read the text at character {pos}; is it a .prototxt?")
        tok = m.group(0)
        if not tok.isspace() and not tok.startswith("#"):
            out.append(tok)
        pos = m.end()
    return out


def _value(tok: str):
    if tok[0] in "\"'":
        return bytes(tok[1:-1], "utf-8").decode("unicode_escape")
    try:
        return int(tok)
    except ValueError:
        pass
    try:
        return float(tok)
    except ValueError:
        return tok  # an enum name or true/false


def parse_text(text: str, source: str = "prototxt") -> Message:
    """Parse protobuf text format into ``{field: [values]}``; nested messages are dicts of the same form."""
    toks = _tokens(text, source)
    stack: list[Message] = [{}]
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok in ("}", ">"):
            if len(stack) == 1:
                raise DataError(f"{source}: unbalanced {tok!r}")
            stack.pop()
            i += 1
            continue
        if tok in (",", ";"):
            i += 1
            continue
        key = tok
        i += 1
        if i < len(toks) and toks[i] == ":":
            i += 1
        if i >= len(toks):
            raise DataError(f"{source}: {key!r} has no value (the file ends)")
        if toks[i] in ("{", "<"):
            child: Message = {}
            stack[-1].setdefault(key, []).append(child)
            stack.append(child)
            i += 1
        elif toks[i] == "[":
            i += 1
            while i < len(toks) and toks[i] != "]":
                if toks[i] != ",":
                    stack[-1].setdefault(key, []).append(_value(toks[i]))
                i += 1
            i += 1
        else:
            stack[-1].setdefault(key, []).append(_value(toks[i]))
            i += 1
    if len(stack) != 1:
        raise DataError(f"{source}: a '{{' is never closed; the file is cut short")
    return stack[0]


def _one(msg: Message, key: str, default=None):
    values = msg.get(key)
    return values[-1] if values else default


def _pair(msg: Message, key: str, h: str, w: str, default: int) -> tuple[int, int]:
    if h in msg or w in msg:
        return (int(_one(msg, h, default)), int(_one(msg, w, default)))
    values = msg.get(key) or [default]
    return (int(values[0]), int(values[-1]))


def _layer(msg: Message) -> Layer:
    kind = _one(msg, "type", "")
    if isinstance(kind, int) or kind in _V1_NAMES:
        code = kind if isinstance(kind, int) else _V1_NAMES[kind]
        kind = V1_TYPES.get(code, str(kind))
    layer = Layer(str(_one(msg, "name", "")), str(kind), list(msg.get("bottom", [])), list(msg.get("top", [])))
    if "convolution_param" in msg:
        c = _one(msg, "convolution_param")
        layer.conv = {
            "num_output": int(_one(c, "num_output", 0)),
            "bias_term": str(_one(c, "bias_term", "true")).lower() != "false",
            "pad": _pair(c, "pad", "pad_h", "pad_w", 0),
            "kernel": _pair(c, "kernel_size", "kernel_h", "kernel_w", 0),
            "stride": _pair(c, "stride", "stride_h", "stride_w", 1),
            "group": int(_one(c, "group", 1)),
        }
    if "pooling_param" in msg:
        p = _one(msg, "pooling_param")
        method = str(_one(p, "pool", "MAX"))
        layer.pool = {
            "method": {"MAX": "max", "AVE": "avg", "0": "max", "1": "avg"}.get(method, method.lower()),
            "kernel": _pair(p, "kernel_size", "kernel_h", "kernel_w", 0),
            "stride": _pair(p, "stride", "stride_h", "stride_w", 1),
            "pad": _pair(p, "pad", "pad_h", "pad_w", 0),
            "global": str(_one(p, "global_pooling", "false")).lower() == "true",
            "round": "floor" if str(_one(p, "round_mode", "CEIL")) in ("FLOOR", "1") else "ceil",
        }
    return layer


def read_prototxt(path: str | Path) -> tuple[Net, dict]:
    """A net definition's layers and its input preprocessing (``transform_param`` of the first data layer)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prototxt {path} does not exist; check the path")
    msg = parse_text(path.read_text(encoding="utf-8", errors="replace"), path.name)
    raw = msg.get("layer") or msg.get("layers") or []
    layout = "V2" if "layer" in msg else "V1"
    layers = [_layer(m) for m in raw if isinstance(m, dict)]
    if not layers:
        raise DataError(f"{path} defines no layers; is it a Caffe net .prototxt?")
    transform: dict = {}
    # transform_param since mid-2014; before that crop_size/mean_file/scale sat in data_param.
    params = [m[k][-1] for m in raw if isinstance(m, dict) for k in ("transform_param", "data_param") if k in m]
    for t in params:
        if isinstance(t, dict) and ({"crop_size", "scale", "mean_file", "mean_value"} & set(t)):
            transform = {
                "crop_size": _one(t, "crop_size"),
                "scale": _one(t, "scale"),
                "mean_file": _one(t, "mean_file"),
                "mean_value": [float(v) for v in t.get("mean_value", [])],
            }
            break
    return Net(str(_one(msg, "name", "")), layout, layers), transform
