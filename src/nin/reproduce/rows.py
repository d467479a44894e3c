"""The paper's experiments as reproduction rows: which config runs for a row under each recipe, and whether
its data is on disk.
"""

from __future__ import annotations

from nin.data.registry import dataset_info
from nin.errors import ConfigError
from nin.train.config import TrainConfig, validate
from nin.train.experiments import get_config, list_configs

# Every experiment of the paper that nin can run, in the paper's order: Tables 1-4, Table 5,
# §4.6. Each name is a registered config carrying the paper's number.
PAPER_ROWS: tuple[str, ...] = (
    "cifar10",
    "cifar10_aug",
    "cifar100",
    "svhn",
    "mnist",
    "cifar10_fc",
    "cifar10_fc_dropout",
    "cifar10_cnn_fc",
    "cifar10_cnn_fc_dropout",
    "cifar10_cnn_gap",
)
RECIPES = ("paper", "modern")


def row_config(row: str, recipe: str = "paper") -> TrainConfig:
    """The config of ``row`` under ``recipe``: ``modern`` picks ``<row>_modern`` where one is registered.

    Any registered config name is a valid row (``quickstart``, ``fashion_mnist``, ...).
    """
    if recipe not in RECIPES:
        raise ConfigError(f"recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    names = set(list_configs())
    if row not in names:
        raise ConfigError(
            f"unknown row {row!r}; paper rows: {', '.join(PAPER_ROWS)}; "
            f"any config works too: {', '.join(sorted(names))}"
        )
    if recipe == "modern" and f"{row}_modern" in names:
        return get_config(f"{row}_modern")
    return get_config(row)


def scale_epochs(cfg: TrainConfig, factor: float) -> TrainConfig:
    """Shorten (or lengthen) a run: epochs, plateau patience and step milestones all scale by ``factor``."""
    if factor <= 0:
        raise ConfigError(f"--epochs-scale must be > 0, got {factor}")
    if factor == 1:
        return cfg
    return validate(
        cfg.replace(
            epochs=max(1, round(cfg.epochs * factor)),
            plateau_patience=max(1, round(cfg.plateau_patience * factor)),
            milestones=tuple(sorted({max(1, round(m * factor)) for m in cfg.milestones})),
            warmup_epochs=cfg.warmup_epochs * factor,
        )
    )


def data_status(cfg: TrainConfig) -> tuple[bool, str]:
    """(usable, what to do): whether both splits of ``cfg``'s dataset are on disk (files only, no md5)."""
    from nin.data.inventory import inspect
    from nin.data.sources import SOURCES

    name = cfg.dataset
    dataset_info(name)  # unknown names raise here
    if name.startswith("imagefolder"):
        ok = bool(cfg.data_root)
        return ok, "" if ok else f"pass your image folder: --data-root DIR (or --set data_root=DIR) for {name}"
    if name not in SOURCES:
        return True, ""  # built in or synthetic
    state = inspect(SOURCES[name], cfg.data_root, check=False)
    ok = all(state["splits"].get(s, False) for s in (cfg.train_split, cfg.test_split))
    return ok, "" if ok else f"{state['fetch']}  (or `nin data info {name}`)"
