"""One result row per input file, and the flat columns every output format shares.

Columns, in order: ``path``, ``label`` and ``probability`` (the top class), ``label_2``/``probability_2`` ...
``label_K``/``probability_K`` (the rest of the top K), with ``--cam-box`` ``cam_left``, ``cam_top``,
``cam_right``, ``cam_bottom`` (the top class's CAM box in the model's input pixels, inclusive), and
``error`` (empty when the file was classified). An error row has an empty label and empty numbers.
The same flat names in CSV, JSON lines and Parquet make the formats interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Prediction(Protocol):
    """What a row needs of :class:`nin.serve.predictor.Prediction`: the top classes, most probable first.

    (A protocol rather than an import: ``Predictor.predict_many`` imports this package, so this package
    imports nothing from ``nin.serve``.)
    """

    labels: list[str]
    probabilities: list[float]
    indices: list[int]


CAM_COLUMNS = ("cam_left", "cam_top", "cam_right", "cam_bottom")


@dataclass(frozen=True)
class Columns:
    """The column layout of one output file: ``top_k`` classes (already capped at the class count)."""

    top_k: int
    cam_box: bool = False

    @property
    def names(self) -> list[str]:
        out = ["path", "label", "probability"]
        for r in range(2, self.top_k + 1):
            out += [f"label_{r}", f"probability_{r}"]
        if self.cam_box:
            out += list(CAM_COLUMNS)
        return [*out, "error"]

    def kind(self, name: str) -> str:
        """``str`` | ``float`` | ``int``: how a column's values are typed when read back."""
        if name.startswith("probability"):
            return "float"
        return "int" if name in CAM_COLUMNS else "str"

    @classmethod
    def from_names(cls, names: list[str]) -> Columns:
        """The layout that has exactly these column names (as read from a file's header), or raise ValueError."""
        k = 1 + sum(1 for n in names if n.startswith("label_"))
        cols = cls(k, cam_box=CAM_COLUMNS[0] in names)
        if cols.names != list(names):
            raise ValueError(f"unexpected columns {names}")
        return cols


@dataclass(frozen=True)
class PredictionRow:
    """The result for one input file: a :class:`Prediction`, or the reason there is none.

    Attributes:
        index: position of the file in the input stream (0-based).
        path: the path as it was given or found.
        prediction: the top-k classes, ``None`` when the file could not be read or decoded.
        error: why there is no prediction; ``""`` when there is one.
        box: with ``cam_box``, the top class's CAM box ``(left, top, right, bottom)`` in input pixels.
    """

    index: int
    path: str
    prediction: Prediction | None
    error: str = ""
    box: tuple[int, int, int, int] | None = None

    @property
    def ok(self) -> bool:
        return not self.error

    def record(self, columns: Columns) -> dict:
        """The row as ``{column: value}`` in the layout of ``columns`` (``None`` for empty numbers)."""
        rec: dict = {"path": self.path}
        p = self.prediction
        for r in range(1, columns.top_k + 1):
            has = p is not None and r <= len(p.labels)
            suffix = "" if r == 1 else f"_{r}"
            rec["label" + suffix] = p.labels[r - 1] if has else ""
            rec["probability" + suffix] = p.probabilities[r - 1] if has else None
        if columns.cam_box:
            for name, v in zip(CAM_COLUMNS, self.box or (None,) * 4):
                rec[name] = v
        rec["error"] = self.error
        return rec
