"""Training: configs, recipes, the loop, evaluation and checkpoints."""

from nin.train.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint
from nin.train.config import TrainConfig, apply_overrides
from nin.train.engine import Result, train
from nin.train.evaluate import evaluate

__all__ = [
    "Result",
    "TrainConfig",
    "apply_overrides",
    "build_from_checkpoint",
    "evaluate",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]
