"""Reproduce the paper's experiments (Tables 1-5, §4.6) and report our numbers beside the paper's."""

from nin.reproduce.rows import PAPER_ROWS, RECIPES, row_config, scale_epochs
from nin.reproduce.runner import RowResult, reproduce

__all__ = ["PAPER_ROWS", "RECIPES", "RowResult", "reproduce", "row_config", "scale_epochs"]
