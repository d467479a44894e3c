"""Reading an MXNet symbol JSON (``nin-symbol.json``) and describing it as :class:`~nin.interop.archspec.Op`.

The graph is ``{"nodes": [{"op", "name", "inputs": [[id, index(, version)]], attrs}], "arg_nodes", "heads"}``
with attributes as strings (``"kernel": "(11,11)"``) under ``param`` (MXNet <= 0.8, ModelHub's file),
``attr`` (0.9) or ``attrs`` (>= 1.0). Only a straight chain is accepted: NIN has no branches.
"""

from __future__ import annotations

import json
from pathlib import Path

from nin.errors import DataError
from nin.interop.archspec import Op
from nin.interop.files import provenance, read_file

_PASS_THROUGH = {"Flatten", "flatten", "SoftmaxOutput", "softmax", "SoftmaxActivation", "Softmax"}


def _attrs(node: dict) -> dict[str, str]:
    for key in ("attrs", "attr", "param"):
        if isinstance(node.get(key), dict):
            return {str(k): str(v) for k, v in node[key].items()}
    return {}


def _pair(value: str | None, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        parts = [int(x) for x in value.strip("()[] ").split(",") if x.strip()]
    except ValueError:
        raise DataError(f"{where}: cannot read {value!r} as a size") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise DataError(f"{where}: {value!r} is not a 2-D size; NIN is a 2-D network")
    return parts[0], parts[1]


def _true(value: str | None) -> bool:
    return str(value).lower() in ("true", "1")


def parse_symbol(data: bytes, source: str = "symbol") -> tuple[list[Op], dict[str, tuple[str, str | None]]]:
    """Parse a symbol JSON into ops in graph order and ``{conv name: (weight arg, bias arg or None)}``."""
    try:
        graph = json.loads(data.decode("utf-8"))
        nodes = graph["nodes"]
        heads = graph.get("heads") or [[len(nodes) - 1, 0]]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{source} is not an MXNet symbol JSON ({type(exc).__name__}); pass the -symbol.json") from None
    if not isinstance(nodes, list) or not nodes:
        raise DataError(f"{source} has no nodes; it is not an MXNet symbol JSON")
    # Walk back from the output along each op's first input: NIN is a chain data -> ... -> softmax.
    chain: list[dict] = []
    idx = heads[0][0]
    while True:
        if not isinstance(idx, int) or not 0 <= idx < len(nodes):
            raise DataError(f"{source}: node input {idx!r} is out of range; the file is corrupt")
        node = nodes[idx]
        if node.get("op") == "null":
            break
        chain.append(node)
        inputs = node.get("inputs") or []
        if not inputs:
            raise DataError(f"{source}: node {node.get('name')!r} has no input; the file is corrupt")
        idx = inputs[0][0]
        if len(chain) > len(nodes):
            raise DataError(f"{source}: the graph has a cycle; the file is corrupt")
    if nodes[idx].get("name") != "data":
        raise DataError(f"{source}: the graph starts at {nodes[idx].get('name')!r}, not at the image input 'data'")
    chain.reverse()
    ops: list[Op] = []
    params: dict[str, tuple[str, str | None]] = {}
    for node in chain:
        op, name, a = node.get("op"), str(node.get("name")), _attrs(node)
        where = f"{source}: node {name!r}"
        if op == "Convolution":
            if int(a.get("num_group", "1")) != 1 or _pair(a.get("dilate", "(1,1)"), where) != (1, 1):
                raise DataError(f"{where} is a grouped or dilated convolution; NIN has neither")
            ops.append(
                Op(
                    "conv",
                    name,
                    out_channels=int(a["num_filter"]) if "num_filter" in a else None,
                    kernel=_pair(a.get("kernel"), where),
                    stride=_pair(a.get("stride", "(1,1)"), where),
                    pad=_pair(a.get("pad", "(0,0)"), where),
                    type_name=op,
                )
            )
            args = [nodes[i[0]]["name"] for i in node["inputs"][1:] if nodes[i[0]].get("op") == "null"]
            no_bias = _true(a.get("no_bias"))
            if len(args) != (1 if no_bias else 2):
                raise DataError(f"{where} should take a weight and a bias, takes {args}")
            params[name] = (args[0], None if no_bias else args[1])
        elif op == "Activation" or op == "relu":
            if op == "Activation" and a.get("act_type") != "relu":
                raise DataError(f"{where} is a {a.get('act_type')} activation; NIN uses ReLU")
            ops.append(Op("relu", name, type_name=op))
        elif op == "Pooling":
            ops.append(
                Op(
                    "pool",
                    name,
                    kernel=_pair(a.get("kernel"), where),
                    stride=_pair(a.get("stride", "(1,1)"), where),
                    pad=_pair(a.get("pad", "(0,0)"), where),
                    method=a.get("pool_type", "max"),
                    # MXNet's default convention is "valid" (floor); NIN needs "full" (ceil).
                    ceil=a.get("pooling_convention", "valid") == "full",
                    global_pool=_true(a.get("global_pool")),
                    type_name=op,
                )
            )
        elif op == "Dropout":
            ops.append(Op("dropout", name, type_name=op))
        elif op in _PASS_THROUGH:
            continue
        else:
            ops.append(Op("other", name, type_name=str(op)))
    return ops, params


def read_symbol(path: str | Path) -> tuple[list[Op], dict[str, tuple[str, str | None]], dict]:
    """Read a symbol JSON file; returns ops, the parameter names of each convolution, and provenance."""
    data = read_file(path, "MXNet symbol file")
    ops, params = parse_symbol(data, Path(path).name)
    return ops, params, provenance(path, data)
