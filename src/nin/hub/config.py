"""The Hub folder's ``config.json``: what timm's ``hf-hub:`` loader reads, plus nin's own block.

``pretrained_cfg`` states mean/std in timm's convention (pixels scaled to 0-1, then ``(x - mean) / std`` per
channel). They are exact when the checkpoint's Preprocessor is a per-channel affine map of RGB pixels (``none``,
``scale``, ``mean_std``, ``imagenet`` in RGB order with a per-channel mean); for the others (GCN + ZCA, GCN + LCN,
a mean image, BGR input) the values are the nearest honest ones and ``nin_preprocess_exact`` is false: nin's own
loaders always use the recorded Preprocessor, timm's transforms then only approximate it. Only fields of timm's
``PretrainedCfg`` go into ``pretrained_cfg`` (timm builds that dataclass from it); nin's extras sit beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from nin.errors import CheckpointError

TIMM_OWN = ("num_classes", "in_channels")  # build options timm passes itself (in_chans), not in model_args


def timm_mean_std(pre: dict, channels: int) -> tuple[list[float], list[float], bool]:
    """(mean, std, exact): the Preprocessor state as timm's 0-1 per-channel normalisation."""
    name = pre.get("name", "none")
    opts = pre.get("options") or {}
    t = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in (pre.get("tensors") or {}).items()}
    zeros, ones = [0.0] * channels, [1.0] * channels
    if name == "none":
        return zeros, [1 / 255] * channels, True
    if name == "scale":
        return zeros, ones, True
    if name == "mean_std" and t.get("mean") is not None and t["mean"].numel() == channels:
        return (t["mean"] / 255).tolist(), (t["std"] / 255).tolist(), True
    if name == "imagenet":
        scale = float(opts.get("scale", 1.0))
        std = [1 / (255 * scale)] * channels
        mean = t.get("mean", torch.zeros(0))
        mode, rgb = opts.get("mean_mode", "none"), opts.get("order", "rgb") == "rgb"
        if mode == "none":
            return zeros, std, rgb
        if mode == "channel" and mean.numel() == channels:
            values = mean if rgb else mean.flip(0)
            return (values / 255).tolist(), std, rgb
        if mean.ndim == 3 and mean.shape[0] == channels:  # a mean image: its per-channel average
            values = mean.mean(dim=(1, 2))
            return (values if rgb else values.flip(0)).div(255).tolist(), std, False
    # GCN + ZCA / LCN normalise each image by its own statistics: no fixed affine map reproduces them.
    return [0.5] * channels, [0.5] * channels, False


def _module_names(ckpt: dict) -> tuple[str, str]:
    """The qualified names of the first convolution and of the classifier (the class-map layer or the FC)."""
    from nin.models import build_model

    spec = ckpt["model"]
    with torch.device("meta"):
        model = build_model(spec["name"], **spec.get("options", {}))
    names = {id(m): n for n, m in model.named_modules()}
    layers = list(model.named_layers().values())
    return names[id(layers[0])], names[id(model.last_layer())]


def hub_config(ckpt: dict, nin_block: dict) -> dict:
    """``config.json`` for a checkpoint: architecture, classes, input, pretrained_cfg (timm) and nin's block."""
    c, h, w = (int(ckpt["input"][k]) for k in ("channels", "height", "width"))
    options = dict(ckpt["model"].get("options") or {})
    classes = list(ckpt["classes"])
    mean, std, exact = timm_mean_std(ckpt.get("preprocess") or {}, c)
    first_conv, classifier = _module_names(ckpt)
    pre_opts = (ckpt.get("preprocess") or {}).get("options") or {}
    resize = pre_opts.get("resize")
    crop_pct = h / int(pre_opts["resize_size"]) if resize in ("warp_crop", "shorter_crop") else 1.0
    source = ckpt.get("source") or {}
    return {
        "architecture": ckpt["model"]["name"],
        "num_classes": len(classes),
        "num_features": len(classes),  # NIN's features are its class maps: one per class
        "label_names": classes,
        "model_args": {k: v for k, v in options.items() if k not in TIMM_OWN},
        "pretrained_cfg": {
            "input_size": [c, h, w],
            "mean": mean,
            "std": std,
            "interpolation": "bicubic" if pre_opts.get("resample") == "lanczos" else "bilinear",
            "crop_pct": round(crop_pct, 6),
            "crop_mode": "center",
            "num_classes": len(classes),
            "first_conv": first_conv,
            "classifier": classifier,
            "license": ckpt.get("license") or source.get("license") or "mit",
            "tag": ckpt.get("tag") or ("imported" if source else "nin"),
        },
        # Beside pretrained_cfg, not in it: timm builds its PretrainedCfg dataclass from that dict's keys.
        "nin_preprocess": (ckpt.get("preprocess") or {}).get("name", "none"),
        "nin_preprocess_exact": exact,
        "nin": nin_block,
    }


def read_config_json(weights: Path) -> dict:
    """The nin metadata of a ``model.safetensors`` that has none, from the ``config.json`` beside it.

    A config without nin's block but naming an architecture (as timm writes one) gives a checkpoint description
    from its timm fields; :func:`nin.hub.safetensors_io.check_architecture` then refuses names nin does not know.
    """
    path = weights.with_name("config.json")
    if not path.is_file():
        raise CheckpointError(
            f"{weights} has no 'nin' metadata and no config.json beside it: nothing says which model it holds "
            "(write it with `nin export CKPT --format safetensors` or `--hub DIR`)"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({type(exc).__name__}); the folder is damaged") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} is not a JSON object; the folder is damaged")
    if isinstance(config.get("nin"), dict):
        return config["nin"]
    arch = config.get("architecture") or config.get("model_type")
    if not isinstance(arch, str):
        raise CheckpointError(f"{path} names no architecture; it is not the config of a nin or timm model")
    cfg = config.get("pretrained_cfg") or {}
    c, h, w = cfg.get("input_size") or [3, 224, 224]
    k = int(config.get("num_classes") or cfg.get("num_classes") or len(config.get("label_names") or []) or 1000)
    labels = config.get("label_names") or [str(i) for i in range(k)]
    mean = [float(m) * 255 for m in cfg.get("mean") or [0.0] * c]
    std = [float(s) * 255 for s in cfg.get("std") or [1.0] * c]
    options = {**(config.get("model_args") or {}), "num_classes": k, "in_channels": int(c)}
    return {
        "model": {"name": arch, "options": options},
        "classes": [str(x) for x in labels],
        "input": {"channels": int(c), "height": int(h), "width": int(w)},
        "preprocess": {"name": "mean_std", "options": {}, "tensors": {"mean": mean, "std": std}},
        "metrics": {},
        "train": {},
        "source": {"format": "timm config.json", "file": path.name},
    }
