"""Arguments that several commands share, spelled once."""

from __future__ import annotations

import argparse


def add_overrides(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--set KEY=VALUE ...`` (repeatable) into ``args.overrides``."""
    p.add_argument(
        "--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help=help_text
    )


def add_precision(p: argparse.ArgumentParser) -> None:
    """``--precision`` of the inference commands: fp32 by default, so answers do not depend on the machine."""
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "auto"),
        help="fp32 (default: the same answers on every CPU and GPU) | bf16 (faster where the hardware has it; "
        "probabilities move by ~1e-3) | auto (bf16 where native, as training does)",
    )
