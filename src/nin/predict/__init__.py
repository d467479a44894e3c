"""Batch prediction: folders, lists and millions of files through a model, fast, resumable, sharded.

- :func:`expand_inputs`: image files, folders (walked recursively, sorted) and ``@LIST`` files, as a stream.
- :meth:`nin.Predictor.predict_many` / :func:`predict_paths`: an iterator of :class:`PredictionRow`, decoded in
  worker processes and batched, for use inside other programs.
- :func:`predict_to_file`: the ``nin predict ... --out FILE`` path: CSV / JSON lines / Parquet, one row per
  input in input order, atomic per batch, ``resume``, and sharded over the ranks of ``torchrun``.

Example::

    from nin import Predictor
    from nin.predict import expand_inputs

    p = Predictor.from_checkpoint("runs/quickstart/last.pt")
    for row in p.predict_many(expand_inputs(["photos/", "@more.txt"]), batch_size=128, workers=2):
        print(row.path, row.prediction.label if row.ok else row.error)
"""

from __future__ import annotations

from nin.predict.engine import predict_batches, predict_paths
from nin.predict.inputs import expand_inputs, walk_folder
from nin.predict.rows import Columns, PredictionRow
from nin.predict.runner import RunSummary, predict_to_file

__all__ = [
    "Columns",
    "PredictionRow",
    "RunSummary",
    "expand_inputs",
    "predict_batches",
    "predict_paths",
    "predict_to_file",
    "walk_folder",
]
