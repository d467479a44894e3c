"""Imported weights -> a nin checkpoint: match layers by name, check shapes, record preprocessing and provenance.

Caffe: layers are matched by name (``conv4-1024`` = ``conv4_1024``) and element count, then reshaped, because
the 2014 ImageNet file stores wrong legacy blob dims. Its first convolution reads BGR; by default its input
channels are flipped so the checkpoint takes RGB like every other nin model (the preprocessing then feeds
RGB and the mean is flipped to match); ``keep_bgr`` keeps the stored weights and records BGR instead.
MXNet: ModelHub's ``nin-0000.params`` comes from MXNet's Caffe converter, which already flipped conv1 to RGB.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from nin.errors import ConfigError, DataError
from nin.interop import archspec
from nin.interop.archspec import ArchSpec, Op
from nin.interop.caffe import Net
from nin.interop.preprocessing import preprocessor_for_import

log = logging.getLogger(__name__)

# Caffe layer types that carry no weights and do not change the image path (inputs, losses, outputs).
_CAFFE_IGNORED = {
    "Data",
    "ImageData",
    "MemoryData",
    "Input",
    "HDF5Data",
    "DummyData",
    "Softmax",
    "SoftmaxWithLoss",
    "Accuracy",
    "Flatten",
    "Split",
    "Silence",
}
_CAFFE_KINDS = {"Convolution": "conv", "ReLU": "relu", "Pooling": "pool", "Dropout": "dropout"}


def caffe_ops(net: Net, source: str = "caffe net") -> list[Op]:
    """A Caffe net's layers as :class:`Op` (layers without effect on inference left out)."""
    ops = []
    for layer in net.layers:
        if layer.type in _CAFFE_IGNORED:
            continue
        kind = _CAFFE_KINDS.get(layer.type, "other")
        op = Op(kind, layer.name, type_name=layer.type)
        if layer.conv:
            op.out_channels = layer.conv["num_output"] or None
            op.kernel, op.stride, op.pad = layer.conv["kernel"], layer.conv["stride"], layer.conv["pad"]
            if layer.conv["group"] != 1:
                raise DataError(f"{source}: layer {layer.name!r} is a grouped convolution; NIN has none")
        if layer.pool:
            p = layer.pool
            op.kernel, op.stride, op.pad, op.method = p["kernel"], p["stride"], p["pad"], p["method"]
            op.ceil, op.global_pool = p["round"] == "ceil", p["global"]
        ops.append(op)
    return ops


def _resolve_arch(arch: str, ops: list[Op]) -> str:
    """``nin_cifar10`` from a file whose block-2 pool averages is the Model Zoo's ``nin_cifar10_caffe``."""
    if arch not in archspec.ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; valid: {', '.join(archspec.ARCHS)}")
    if arch == "nin_cifar10":
        after = None
        for op in ops:
            if op.kind == "conv":
                after = archspec.normalize(op.name)
            elif op.kind == "pool" and after == "cccp4" and op.method == "avg":
                log.info("the file averages after block 2 (the Model Zoo net): using nin_cifar10_caffe")
                return "nin_cifar10_caffe"
    return arch


def check_structure(ops: list[Op], spec: ArchSpec, source: str, full: bool = True) -> None:
    """:func:`archspec.check_ops`, with a hint naming the architecture the file does match, if any."""
    try:
        archspec.check_ops(ops, spec, source, full)
    except DataError as exc:
        for other in archspec.ARCHS:
            if other == spec.model_name:
                continue
            try:
                archspec.check_ops(ops, archspec.arch_spec(other), source, full)
            except DataError:
                continue
            raise DataError(f"{exc}; the file matches {other}: pass --arch {other}") from None
        raise


def load_weights(
    model: torch.nn.Module, weights: dict[str, tuple[np.ndarray, np.ndarray | None]], spec: ArchSpec, source: str
) -> list[str]:
    """Copy ``{our layer name: (weight, bias)}`` into ``model``; returns the layers whose dims were reshaped.

    A weight must hold exactly the layer's number of values; a differently declared shape with the same
    count (the legacy Caffe dims) is reshaped and reported.
    """
    layers = model.named_layers()
    reshaped = []
    for c in spec.convs:
        if c.name not in weights:
            raise DataError(f"{source}: no weights for layer {c.name!r} ({spec.model_name} needs every layer)")
        w, b = weights[c.name]
        conv = layers[c.name]
        want = tuple(conv.weight.shape)
        if w.size != conv.weight.numel():
            raise DataError(
                f"{source}: layer {c.name!r} weight has shape {tuple(w.shape)} ({w.size} values); "
                f"{spec.model_name} needs {want} ({conv.weight.numel()} values)"
            )
        if tuple(w.shape) != want:
            reshaped.append(c.name)
        if b is None or b.size != c.out_channels:
            got = "no bias" if b is None else f"a bias of {b.size} values"
            raise DataError(f"{source}: layer {c.name!r} has {got}; {spec.model_name} needs {c.out_channels}")
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.array(w, dtype=np.float32).reshape(want)))
            conv.bias.copy_(torch.from_numpy(np.array(b, dtype=np.float32).reshape(-1)))
    if reshaped:
        log.info(
            "%s: stored dims differ from the layer shapes for %s; reshaped by element count",
            source,
            ", ".join(reshaped),
        )
    return reshaped


# --- the two importers ---------------------------------------------------------------------------------
def _checkpoint(model_name: str, model, pre, classes: list[str], source: dict) -> dict:
    from nin.train.checkpoint import make_checkpoint

    spec = archspec.arch_spec(model_name)
    if len(classes) != spec.convs[-1].out_channels:
        raise ConfigError(f"{len(classes)} class names for {spec.convs[-1].out_channels} outputs")
    source["preprocess"] = pre.describe() if hasattr(pre, "describe") else pre.name
    return make_checkpoint(
        model_name,
        {},
        model,
        pre.state_dict(),
        classes,
        spec.input_shape,
        train={},
        metrics={},
        extra={"source": source},
    )


def _classes(model_name: str, labels: str | Path | None) -> list[str]:
    from nin.interop.labels import default_classes, read_classes

    n = archspec.arch_spec(model_name).convs[-1].out_channels
    return read_classes(labels, n) if labels else default_classes(model_name)


def import_caffe(
    caffemodel: str | Path,
    arch: str,
    *,
    prototxt: str | Path | None = None,
    mean: str | Path | None = None,
    preprocess: str | None = None,
    keep_bgr: bool = False,
    labels: str | Path | None = None,
    fit_dataset: str | None = None,
    data_root: str | None = None,
) -> dict:
    """Import a Caffe Model Zoo ``.caffemodel`` as a nin checkpoint (a dict for :func:`save_checkpoint`).

    Args:
        caffemodel: ``nin_imagenet.caffemodel`` or ``cifar10_nin.caffemodel`` (V1 or V2 layout).
        arch: ``nin_imagenet``, ``nin_cifar10`` (the file's pools pick ``nin_cifar10_caffe`` if they average).
        prototxt: optional net definition, checked against ``arch`` instead of the layers in the file; its
            ``transform_param`` (mean values, scale) goes into the preprocessing.
        mean: a ``.binaryproto`` (or MXNet ``.nd``) mean image to subtract instead of the per-channel mean.
        preprocess: ImageNet: ``caffe`` (default) or ``modelhub``; other nets: a preprocessor name.
        keep_bgr: keep conv1 as stored (BGR input) and record BGR in the preprocessing; default: flip it to RGB.
        labels: class names file (default: the ImageNet or CIFAR-10 names shipped with nin).
        fit_dataset, data_root: dataset to fit a preprocessor that needs statistics on.
    """
    from nin.interop.caffe import read_caffemodel
    from nin.interop.prototxt import read_prototxt
    from nin.models import build_model

    net, prov = read_caffemodel(caffemodel)
    source_name = prov["file"]
    transform: dict = {}
    if prototxt is not None:
        definition, transform = read_prototxt(prototxt)
        where = Path(prototxt).name
        ops = caffe_ops(definition, where)
    else:
        ops, where = caffe_ops(net, source_name), source_name
    model_name = _resolve_arch(arch, ops)
    spec = archspec.arch_spec(model_name)
    full = any(op.kind == "pool" for op in ops)
    if not full:
        log.warning("%s lists only its weight layers: checking names and shapes, not pools", where)
    check_structure(ops, spec, where, full)

    weights: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for layer in net.layers:
        if not layer.blobs:
            continue
        key = archspec.normalize(layer.name)
        if spec.conv(key) is None:
            raise DataError(
                f"{source_name}: layer {layer.name!r} ({layer.type}) has weights but {model_name} has no such layer"
            )
        if key in weights:
            raise DataError(f"{source_name}: layer {layer.name!r} appears twice")
        if len(layer.blobs) > 2:
            raise DataError(f"{source_name}: layer {layer.name!r} has {len(layer.blobs)} blobs; a convolution has 2")
        w = layer.blobs[0].data.reshape(layer.blobs[0].shape)
        b = layer.blobs[1].data if len(layer.blobs) > 1 else None
        weights[key] = (w, b)
    model = build_model(model_name)
    reshaped = load_weights(model, weights, spec, source_name)

    # ImageNet Caffe nets read BGR (OpenCV); the CIFAR-10 net read pylearn2's RGB arrays.
    stored_order = "bgr" if model_name == "nin_imagenet" else "rgb"
    network_order = stored_order
    if stored_order == "bgr" and not keep_bgr:
        first = model.named_layers()[spec.convs[0].name]
        with torch.no_grad():
            first.weight.copy_(first.weight.flip(1))
        network_order = "rgb"
    pre = preprocessor_for_import(model_name, preprocess, network_order, mean, transform, fit_dataset, data_root)
    files = [prov]
    if prototxt is not None:
        from nin.interop.files import provenance, read_file

        files.append(provenance(prototxt, read_file(prototxt, "prototxt")))
    if mean is not None:
        from nin.interop.files import provenance, read_file

        files.append(provenance(mean, read_file(mean, "mean file")))
    source = {
        "format": "caffe",
        "layout": net.layout,
        "files": files,
        "stored_input_order": stored_order,
        "conv1_flipped_to_rgb": network_order != stored_order,
        "reshaped_layers": reshaped,
    }
    return _checkpoint(model_name, model, pre, _classes(model_name, labels), source)


def import_mxnet(
    symbol: str | Path,
    params: str | Path,
    arch: str = "nin_imagenet",
    *,
    mean: str | Path | None = None,
    preprocess: str | None = None,
    labels: str | Path | None = None,
    fit_dataset: str | None = None,
    data_root: str | None = None,
) -> dict:
    """Import ModelHub's MXNet NIN (``nin-symbol.json`` + ``nin-0000.params``) as a nin checkpoint.

    The symbol is checked to be the claimed NIN (layer kinds, kernels, strides, ceil-mode pools) before any
    weight is mapped. The weights take RGB, as MXNet's Caffe converter left them. Other arguments as
    :func:`import_caffe`.
    """
    from nin.interop.mxnet_params import read_params
    from nin.interop.mxnet_symbol import read_symbol
    from nin.models import build_model

    ops, conv_args, sprov = read_symbol(symbol)
    model_name = _resolve_arch(arch, ops)
    spec = archspec.arch_spec(model_name)
    check_structure(ops, spec, sprov["file"])
    arrays, pprov = read_params(params)
    source_name = pprov["file"]
    used: set[str] = set()

    def lookup(arg: str | None) -> np.ndarray | None:
        if arg is None:
            return None
        for key in (f"arg:{arg}", arg):  # Module checkpoints prefix "arg:"; Gluon files do not
            if key in arrays:
                used.add(key)
                return arrays[key]
        raise DataError(
            f"{source_name} has no array {arg!r} (layer {arg.rsplit('_', 1)[0]!r}); is it the params of this symbol?"
        )

    weights = {archspec.normalize(name): (lookup(w), lookup(b)) for name, (w, b) in conv_args.items()}
    for name, (w, _) in weights.items():
        want = (
            spec.conv(name).out_channels,
            spec.conv(name).in_channels,
            spec.conv(name).kernel,
            spec.conv(name).kernel,
        )
        if tuple(w.shape) != want:
            raise DataError(
                f"{source_name}: layer {name!r} weight has shape {tuple(w.shape)}; {model_name} needs {want}"
            )
    unused = sorted(set(arrays) - used)
    if unused:
        log.warning("%s: ignoring arrays the graph does not use: %s", source_name, ", ".join(unused[:5]))
    model = build_model(model_name)
    load_weights(model, weights, spec, source_name)
    pre = preprocessor_for_import(model_name, preprocess, "rgb", mean, None, fit_dataset, data_root)
    files = [sprov, {k: pprov[k] for k in ("file", "bytes", "md5")}]
    if mean is not None:
        from nin.interop.files import provenance, read_file

        files.append(provenance(mean, read_file(mean, "mean file")))
    source = {"format": "mxnet", "layout": "+".join(pprov["layouts"]), "dtypes": pprov["dtypes"], "files": files}
    return _checkpoint(model_name, model, pre, _classes(model_name, labels), source)
