"""TensorBoard events for a training run: an ``on_epoch`` callback for :func:`nin.train.engine.train`.

``nin train --tensorboard`` writes RUN_DIR/tb; view it with ``tensorboard --logdir RUN_DIR/tb``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nin.extras import require

# metrics.jsonl key -> TensorBoard tag; grouped by prefix so train and test share a chart section.
TAGS = {
    "train_loss": "loss/train",
    "test_loss": "loss/test",
    "train_error_pct": "error_pct/train",
    "test_error_pct": "error_pct/test",
    "test_accuracy": "accuracy/test",
    "lr": "lr",
    "img_per_s": "throughput/img_per_s",
    "epoch_time_s": "time/epoch_s",
}


class TensorBoardLogger:
    """Writes each epoch's metrics row as TensorBoard scalars, at the global step of the epoch's end.

    Args:
        log_dir: where the event files go (e.g. ``RUN_DIR/tb``).
        config: the resolved config, written once as text.

    Raises:
        MissingDependencyError: the ``tensorboard`` package is missing (it is in the ``viz`` extra).
    """

    def __init__(self, log_dir: str | os.PathLike, config: dict | None = None) -> None:
        tb = require("torch.utils.tensorboard", "--tensorboard", package="tensorboard")
        self.log_dir = Path(log_dir)
        self.writer = tb.SummaryWriter(log_dir=str(self.log_dir))
        if config:
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```", 0)

    def __call__(self, row: dict) -> None:
        step = int(row.get("step", row["epoch"]))
        for key, tag in TAGS.items():
            value = row.get(key)
            if isinstance(value, (int, float)):
                self.writer.add_scalar(tag, float(value), step)
        self.writer.add_scalar("epoch", float(row["epoch"]), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
