"""The NIN family in timm's model registry: one entry point per registered NIN model, under its nin name.

Each entry builds through timm's ``build_model_with_cfg``, so everything timm does with its own models applies:
``pretrained=True`` with ``pretrained_cfg_overlay=dict(file=...)`` (a nin ``.safetensors`` or ``.pt`` checkpoint),
``hf-hub:ORG/NAME`` and ``local-dir:DIR`` Hub folders, ``num_classes``/``in_chans`` overrides (timm adapts the
first conv and drops a mismatched classifier), ``features_only=True``. The model itself is nin's
(``nin.models.build_model(name, ...)``), so state-dict keys are nin's. Imported only once timm is (see
:mod:`nin.integrations.timm_hook`); this module imports torch and timm, never torchvision itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn as nn
from timm.layers import register_notrace_module
from timm.models import build_model_with_cfg, register_model

from nin.models import build_model, describe_model, list_models
from nin.models.dropout import Dropout

# Read by timm's register_model, which looks the cfg up in the entry point's module under this name.
default_cfgs: dict[str, dict] = {}
_registered: set[str] = set()

# No weights are registered: these are the statistics a user starts from. A checkpoint's Hub folder carries its
# own (config.json's pretrained_cfg); with `file=`, pass mean/std in pretrained_cfg_overlay (docs/timm.md).
_RGB_MEAN, _RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_GRAY_MEAN, _GRAY_STD = (0.1307,), (0.3081,)  # MNIST's pixel mean and std on the 0-1 scale


def _module_name(model: nn.Module, module: nn.Module) -> str:
    return next(name for name, m in model.named_modules() if m is module)


def pretrained_cfg_for(name: str) -> dict:
    """timm's pretrained config of a NIN model, read from the model itself (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = build_model(name).eval()
        c, (h, w) = model.in_channels, model.input_size
        with torch.no_grad():
            pool = tuple(model.forward_features(torch.empty(1, c, h, w)).shape[-2:])
    first_conv = next(n for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    gap = getattr(model, "has_class_maps", True)
    return {
        "input_size": (c, h, w),
        "pool_size": pool,
        # An FC head reads exactly the maps of the designed input; GAP nets take any size.
        "fixed_input_size": not gap,
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "center",
        "mean": _RGB_MEAN if c == 3 else _GRAY_MEAN * c,
        "std": _RGB_STD if c == 3 else _GRAY_STD * c,
        "num_classes": model.num_classes,
        "first_conv": first_conv,
        "classifier": _module_name(model, model.get_classifier()),
        "license": "mit",
        "description": describe_model(name),
        "paper_name": "Network In Network",
        "paper_ids": "arXiv:1312.4400",
    }


def _drop_preprocess(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    # A nin .safetensors may carry its Preprocessor's tensors (ZCA matrix, mean image) under `preprocess.`; they are
    # not model weights, so any load_state_dict (timm's load_checkpoint too) skips them.
    for key in [k for k in state_dict if k.startswith(prefix + "preprocess.")]:
        del state_dict[key]


def filter_state_dict(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """timm's pretrained filter: a nin checkpoint's state dict as this model loads it.

    Drops ``preprocess.*`` tensors, and the class-map layer's batch norm when the classes changed (timm itself
    drops the classifier's weight and bias then; the norm would not fit the new layer).
    """
    own = model.state_dict()
    head_norm = _module_name(model, model.get_classifier()) + "_bn."
    out = {}
    for key, value in state_dict.items():
        if key.startswith("preprocess."):
            continue
        if key.startswith(head_norm) and (key not in own or own[key].shape != value.shape):
            continue
        out[key] = value
    return out


def _builder(name: str) -> Callable[..., nn.Module]:
    def build(
        num_classes: int | None = None,
        in_chans: int | None = None,
        global_pool: str | None = None,
        img_size: tuple[int, int] | None = None,  # timm passes it for fixed-size models (the FC heads)
        **options,
    ) -> nn.Module:
        model = build_model(name, num_classes=num_classes or None, in_channels=in_chans, **options)
        if img_size is not None and tuple(img_size) != tuple(model.input_size):
            raise ValueError(f"{name} takes {tuple(model.input_size)} inputs only (its FC head), not {tuple(img_size)}")
        if num_classes == 0 or global_pool is not None:
            model.reset_classifier(model.num_classes if num_classes is None else num_classes, global_pool)
        model.register_load_state_dict_pre_hook(_drop_preprocess)
        return model

    return build


def _feature_cfg(name: str) -> dict:
    """How ``features_only=True`` wraps the model: every mlpconv block's output."""
    with torch.device("meta"):
        model = build_model(name)
    cfg: dict = {"out_indices": tuple(range(len(model.feature_info)))}
    if not getattr(model, "has_class_maps", True):
        # The trunk sits inside `body`: hooks read its blocks without rewriting the net.
        cfg.update(feature_cls="hook", no_rewrite=True)
    return cfg


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    feature_cfg = _feature_cfg(name)

    def entry(pretrained: bool = False, **kwargs) -> nn.Module:
        return build_model_with_cfg(
            _builder(name),
            name,
            pretrained,
            pretrained_filter_fn=filter_state_dict,
            feature_cfg=dict(feature_cfg),  # timm pops from it
            **kwargs,
        )

    entry.__name__ = entry.__qualname__ = name
    entry.__module__ = __name__
    entry.__doc__ = describe_model(name)
    return entry


def register_all() -> list[str]:
    """Register every NIN model not yet in timm's registry (idempotent); returns the names added."""
    added = []
    for name in list_models():
        if name in _registered:
            continue
        default_cfgs[name] = pretrained_cfg_for(name)
        register_model(_entrypoint(name))
        _registered.add(name)
        added.append(name)
    if added:
        # FX tracing (timm's fx feature extraction) keeps nin's dropout whole: its fast path branches on the device.
        register_notrace_module(Dropout)
    return added
