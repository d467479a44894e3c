"""What an imported file must contain: the convolutions and pools of a NIN, read off the model itself.

Both importers describe the file they read as a list of :class:`Op` in graph order and call
:func:`check_ops`, so a wrong architecture, a missing layer, a floor-mode pool or a changed kernel is
reported the same way for Caffe and MXNet, naming the layer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from nin.errors import DataError

# Architectures that published weights exist for. nin_cifar10_caffe is the Model Zoo gist's net
# (average pooling after block 2); nin_cifar10 is the paper's (max).
ARCHS = ("nin_imagenet", "nin_cifar10", "nin_cifar10_caffe")


@dataclass(frozen=True)
class ConvSpec:
    name: str  # our module name (conv4_1024); Caffe spells it conv4-1024
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    pad: int


@dataclass(frozen=True)
class ArchSpec:
    model_name: str
    convs: tuple[ConvSpec, ...]
    pools: dict[str, str]  # last conv of a block -> "max" | "avg" (3x3 stride 2, ceil mode)
    gap_size: int  # class-map size at the input size: the final average pool's kernel
    input_shape: tuple[int, int, int]

    def conv(self, name: str) -> ConvSpec | None:
        key = normalize(name)
        return next((c for c in self.convs if c.name == key), None)


@dataclass
class Op:
    """One layer of a foreign graph, as far as the checks need it (``None`` = the file does not say)."""

    kind: str  # conv | relu | pool | dropout | other
    name: str
    out_channels: int | None = None
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    pad: tuple[int, int] | None = None
    method: str | None = None  # pools: max | avg
    ceil: bool = True
    global_pool: bool = False
    type_name: str = ""  # the framework's own type name, for messages


def normalize(name: str) -> str:
    """Caffe's ``conv4-1024`` and MXNet's ``conv4_1024`` are the same layer."""
    return name.replace("-", "_")


@functools.cache
def arch_spec(model_name: str) -> ArchSpec:
    """The expected layers of a registered NIN (built once on the CPU to read its shapes)."""
    from nin.models import build_model, feature_size

    if model_name not in ARCHS:
        raise DataError(f"no pretrained weights are known for {model_name!r}; valid: {', '.join(ARCHS)}")
    model = build_model(model_name)
    convs = tuple(
        ConvSpec(n, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0])
        for n, m in model.named_layers().items()
    )
    pools = {spec.names[-1]: spec.pool for spec in model.blocks if spec.pool}
    h, w = model.input_size
    return ArchSpec(model_name, convs, pools, feature_size(h, model.blocks), (model.in_channels, h, w))


def _sq(v: tuple[int, int] | None) -> int | None:
    return None if v is None else (v[0] if v[0] == v[1] else -1)


def check_ops(ops: list[Op], spec: ArchSpec, source: str, full: bool = True) -> None:
    """Raise :class:`DataError` naming the first layer that differs from ``spec``.

    ``full=False`` checks only the convolutions (for files that keep the weight layers alone).
    """
    convs = [op for op in ops if op.kind == "conv"]
    names = [normalize(op.name) for op in convs]
    want = [c.name for c in spec.convs]
    if names != want:
        missing = [n for n in want if n not in names]
        extra = [op.name for op in convs if normalize(op.name) not in want]
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing)}")
        if extra:
            detail.append(f"unexpected {', '.join(extra)}")
        if not detail:
            detail.append(f"convolutions in the order {', '.join(names)}")
        raise DataError(f"{source} is not {spec.model_name}: {'; '.join(detail)} (expected {', '.join(want)})")
    if not full:
        for op in convs:
            _check_conv(op, spec.conv(op.name), source)
        return
    for op in ops:
        if op.kind == "other":
            raise DataError(f"{source}: layer {op.name!r} ({op.type_name}) is not part of {spec.model_name}")
    for i, op in enumerate(ops):
        if op.kind == "conv":
            _check_conv(op, spec.conv(op.name), source)
            nxt = ops[i + 1] if i + 1 < len(ops) else None
            if nxt is None or nxt.kind != "relu":
                raise DataError(f"{source}: convolution {op.name!r} is not followed by ReLU, as in every NIN layer")
    _check_pools(ops, spec, source)


def _check_conv(op: Op, c: ConvSpec, source: str) -> None:
    checks = (
        ("outputs", op.out_channels, c.out_channels),
        ("kernel", _sq(op.kernel), c.kernel),
        ("stride", _sq(op.stride), c.stride),
        ("padding", _sq(op.pad), c.pad),
    )
    for what, got, expected in checks:
        if got is not None and got != expected:
            shown = {"kernel": op.kernel, "stride": op.stride, "padding": op.pad}.get(what, got)
            raise DataError(f"{source}: layer {op.name!r} has {what} {shown}, {c.name} of NIN has {expected}")


def _check_pools(ops: list[Op], spec: ArchSpec, source: str) -> None:
    last_conv = None
    seen: dict[str, Op] = {}
    final: Op | None = None
    for op in ops:
        if op.kind == "conv":
            last_conv = normalize(op.name)
        elif op.kind == "pool":
            if op.pad not in (None, (0, 0)):
                raise DataError(f"{source}: pooling layer {op.name!r} pads by {op.pad}; NIN's pools do not pad")
            if last_conv == spec.convs[-1].name:
                final = op
            elif last_conv in seen or last_conv is None:
                raise DataError(f"{source}: pooling layer {op.name!r} is not where {spec.model_name} has one")
            else:
                seen[last_conv] = op
    for conv, method in spec.pools.items():
        op = seen.get(conv)
        if op is None:
            raise DataError(f"{source}: no pooling layer after {conv!r}; {spec.model_name} has a 3x3/2 {method} pool")
        if op.method != method or _sq(op.kernel) != 3 or _sq(op.stride) != 2 or op.global_pool:
            raise DataError(
                f"{source}: pooling layer {op.name!r} is {op.method} {op.kernel}/{op.stride}; "
                f"{spec.model_name} has 3x3/2 {method} there"
            )
        if not op.ceil:
            raise DataError(
                f"{source}: pooling layer {op.name!r} rounds its output size down; NIN pools round up "
                "(Caffe's default, MXNet's pooling_convention 'full'), so the feature maps would differ"
            )
    extra = [op.name for conv, op in seen.items() if conv not in spec.pools]
    if extra:
        raise DataError(f"{source}: pooling layer {extra[0]!r} is not where {spec.model_name} has one")
    if final is not None:
        ok = final.method == "avg" and (final.global_pool or _sq(final.kernel) == spec.gap_size)
        if not ok:
            raise DataError(
                f"{source}: the last pooling layer {final.name!r} is {final.method} {final.kernel}; NIN ends with "
                f"global average pooling ({spec.gap_size}x{spec.gap_size} at its input size)"
            )
