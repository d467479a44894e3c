"""The training config: one frozen, typed dataclass, checked by :func:`validate`, overridden with ``--set key=value``.

Every field states its unit or its paper source. The resolved config is saved with every run; the registered
experiments are in :mod:`nin.train.experiments`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass

from nin.data.preprocess import list_preprocessors
from nin.data.registry import list_datasets
from nin.errors import ConfigError
from nin.models import list_models


@dataclass(frozen=True)
class TrainConfig:
    """One experiment: model + data + preprocessing + recipe."""

    name: str = "custom"
    description: str = ""
    # --- model (paper Tables 1-4) ---
    model: str = "nin_mnist"  # a name from `nin list`
    dropout: float = 0.5  # p of the dropout after pool1/pool2 (paper: 0.5)
    batch_norm: bool = False  # BN after every conv (modern; paper: off)
    final_relu: bool = True  # ReLU on the class maps before GAP (paper: on)
    init: str = "paper"  # "paper" = per-layer N(0, std^2); "kaiming"
    # Not in the paper (nin.train.stem_whiten): the first conv's filters set to whitening filters of the training
    # images' patches and frozen.
    whiten_stem: bool = False
    # With whiten_stem: the batch norm after the whitened conv fixed at the identity (not trained, no batch
    # statistics), so no gradient is computed below the stem's ReLU (nin.train.stem_whiten.fix_stem_norm).
    freeze_stem_bn: bool = False
    # --- data ---
    dataset: str = "mnist_embedded"  # a name from `nin data list`
    data_root: str | None = None  # folder holding the downloaded files (default: per dataset)
    train_split: str = "train"
    test_split: str = "test"
    preprocess: str = "mean_std"  # none | scale | mean_std | gcn_zca | gcn_lcn | ...
    translate: int = 0  # random translation, pixels in each direction (paper CIFAR-10 aug row)
    flip: bool = False  # random horizontal flips (never for digits)
    cutout: int = 0  # side (px) of a random square zeroed in each training image (not in the paper; 0 = off)
    # Progressive resizing (not in the paper; nin.train.resize): the first `low_res_share` of the schedule's
    # steps train on batches resized to `low_res` x `low_res` px; the later steps and every evaluation see full size.
    low_res: int = 0  # side (px) of the early steps' images (0 = off)
    low_res_share: float = 0.0  # share of the schedule's steps trained at `low_res`, in [0, 1)
    # --- optimisation (the paper recipe: docs/reproduction.md) ---
    epochs: int = 10
    batch_size: int = 128  # global batch, images per step (paper: 128)
    lr: float = 0.1  # learning rate of weights (paper: 0.1; CIFAR-100 0.02)
    bias_lr_mult: float = 2.0  # biases learn at 2x (cuda-convnet epsB = 2 epsW)
    last_lr_mult: float = 0.1  # the last cccp layer learns at 0.1x (author's layer params)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4  # on weights only; biases and BN never decay (paper: 1e-4; CIFAR-100 5e-4)
    label_smoothing: float = 0.0
    schedule: str = "step"  # constant | step | plateau | cosine | onecycle
    milestones: tuple[int, ...] = ()  # epochs at which `step` multiplies the lr by `gamma`
    gamma: float = 0.1  # lr factor of each step/plateau drop (paper: /10)
    plateau_patience: int = 5  # epochs without a better train error before a plateau drop
    plateau_drops: int = 2  # the paper divides by 10 twice
    warmup_epochs: float = 0.0  # linear warm-up from 0 (0 = none)
    # --- runtime ---
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto | bf16 | fp32 (auto: bf16 where the hardware has it natively)
    channels_last: str = "auto"  # auto | on | off
    compile: str = "auto"  # auto | on | off (torch.compile; auto = on for CUDA only)
    seed: int = 0
    max_steps: int = 0  # stop after this many optimiser steps in total (0 = no limit; smoke runs)
    checkpoint_every: int = 0  # also save last.pt every N steps inside an epoch (0 = per epoch only)
    stall_steps: int = 200  # check for the dead-class-map stall after this many steps (0 = never)
    on_stall: str = "stop"  # stop | warn
    # --- what the paper reports for this experiment (test error, %); None when not a paper row ---
    paper_error: float | None = None
    paper_ref: str = ""

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output (unknown keys, from newer versions, are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        clean = {k: v for k, v in d.items() if k in names}
        if "milestones" in clean:
            clean["milestones"] = tuple(int(m) for m in clean["milestones"])
        return cls(**clean)


_CHOICES = {
    "init": ("paper", "kaiming"),
    "schedule": ("constant", "step", "plateau", "cosine", "onecycle"),
    "precision": ("auto", "bf16", "fp32"),
    "channels_last": ("auto", "on", "off"),
    "compile": ("auto", "on", "off"),
    "on_stall": ("stop", "warn"),
}


# Names chosen from a registry, and the `nin list` section that shows them.
_NAMES = {
    "model": (list_models, "models"),
    "dataset": (list_datasets, "datasets"),
    "preprocess": (list_preprocessors, "preprocess"),
}


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check value ranges, choices and the model, dataset and preprocessing names (before any data loads);
    raise ``ConfigError`` saying what is wrong."""
    for key, choices in _CHOICES.items():
        if getattr(cfg, key) not in choices:
            raise ConfigError(f"{key}={getattr(cfg, key)!r} is not one of: {', '.join(choices)}")
    for key, (names, section) in _NAMES.items():
        if getattr(cfg, key) not in names():
            raise ConfigError(
                f"{key}={getattr(cfg, key)!r} is not one of: {', '.join(names())} (`nin list {section}` describes them)"
            )
    positive = ("epochs", "batch_size")
    for key in positive:
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"{key} must be > 0, got {getattr(cfg, key)}")
    if cfg.lr <= 0:
        raise ConfigError(f"lr must be > 0, got {cfg.lr}")
    if not 0 <= cfg.dropout < 1:
        raise ConfigError(f"dropout must be in [0, 1), got {cfg.dropout}")
    if not 0 <= cfg.label_smoothing < 1:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {cfg.label_smoothing}")
    if cfg.translate < 0 or cfg.cutout < 0 or cfg.weight_decay < 0 or cfg.max_steps < 0:
        raise ConfigError("translate, cutout, weight_decay and max_steps must be >= 0")
    if cfg.low_res < 0 or not 0 <= cfg.low_res_share < 1:
        raise ConfigError(f"low_res must be >= 0 and low_res_share in [0, 1), got {cfg.low_res}, {cfg.low_res_share}")
    if cfg.freeze_stem_bn and not (cfg.whiten_stem and cfg.batch_norm):
        raise ConfigError(
            "freeze_stem_bn fixes the batch norm after a whitened first convolution: set whiten_stem=true and "
            "batch_norm=true with it, or leave it off"
        )
    if (cfg.low_res > 0) != (cfg.low_res_share > 0):
        raise ConfigError(
            f"low_res={cfg.low_res} and low_res_share={cfg.low_res_share}: set both (a side in px and the share of "
            "the steps trained at it) for progressive resizing, or neither"
        )
    return cfg


# --- --set key=value -----------------------------------------------------------------------------
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse(key: str, text: str, annotation) -> object:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null", ""):
            return None
        inner = [a for a in args if a is not type(None)]
        return _parse(key, text, inner[0])
    if origin is tuple:
        parts = [p for p in text.replace(" ", "").split(",") if p]
        return tuple(_parse(key, p, args[0]) for p in parts)
    if annotation is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"--set {key}={text}: expected true or false")
    if annotation in (int, float):
        try:
            return annotation(text)
        except ValueError:
            raise ConfigError(f"--set {key}={text}: expected {annotation.__name__}") from None
    return text


def apply_overrides(cfg: TrainConfig, overrides: list[str] | dict[str, str]) -> TrainConfig:
    """Apply ``key=value`` strings, each checked against the field's name and type."""
    hints = typing.get_type_hints(TrainConfig)
    items = overrides.items() if isinstance(overrides, dict) else (_split(o) for o in overrides)
    changes = {}
    for key, text in items:
        if key not in hints:
            raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(sorted(hints))}")
        changes[key] = _parse(key, str(text), hints[key])
    return validate(cfg.replace(**changes))


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    key, _, value = item.partition("=")
    return key.strip(), value.strip()
