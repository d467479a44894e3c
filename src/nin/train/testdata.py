"""Which data a checkpoint is tested on: the dataset and test split its training config records.

``nin eval``, ``nin classmaps``, the int8 agreement check of ``nin export``, the confusion matrix of
``nin report`` and :func:`nin.export.evaluate.evaluate_file` all ask this one question, of a checkpoint
dict or of the checkpoint-shaped metadata of an ``.onnx`` export (both carry ``train`` and ``input``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nin.data.dataset import Dataset
from nin.errors import ConfigError


@dataclass(frozen=True)
class EvalSplit:
    """A dataset split to evaluate on, and the folder its files are in (``None``: the default data root)."""

    dataset: str
    split: str
    data_root: str | None = None

    @property
    def name(self) -> str:
        """``dataset:split``, for messages and reports."""
        return f"{self.dataset}:{self.split}"


def load_eval_split(
    ckpt: Mapping,
    dataset: str | None = None,
    split: str | None = None,
    data_root: str | None = None,
    *,
    source: object = "the checkpoint",
    hint: str = "pass --dataset NAME",
) -> tuple[EvalSplit, Dataset]:
    """The split ``ckpt`` is tested on, loaded: its config's dataset and ``test_split``, unless overridden.

    Args:
        ckpt: a checkpoint dict (or an ONNX export's metadata) with ``input`` and an optional ``train`` config.
        dataset: use this dataset instead of the recorded one.
        split: use this split instead of the recorded test split (default ``test``).
        data_root: use this data folder instead of the recorded one.
        source: what the checkpoint is called in messages (usually its path).
        hint: what to do when no dataset is recorded or given (imported weights record none).

    Returns:
        Which split it is, and its images and labels.

    Raises:
        ConfigError: no dataset recorded and none given, or images of another shape than the model takes.
        DataError: the dataset's files are missing or damaged (the message says how to get them).
    """
    from nin.data.registry import load_dataset

    train = ckpt.get("train") or {}
    name = dataset or train.get("dataset")
    if not name:
        raise ConfigError(f"{source} does not record the dataset it was trained on (imported weights?); {hint}")
    where = EvalSplit(name, split or train.get("test_split", "test"), data_root or train.get("data_root"))
    ds = load_dataset(where.dataset, where.split, where.data_root)
    want = tuple(int(ckpt["input"][k]) for k in ("channels", "height", "width"))
    if ds.shape != want:
        raise ConfigError(f"{where.name} images are {ds.shape} but {source} takes {want}")
    return where, ds
