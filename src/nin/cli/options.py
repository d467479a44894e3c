"""Arguments that several commands share, spelled once."""

from __future__ import annotations

import argparse


def add_overrides(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--set KEY=VALUE ...`` (repeatable) into ``args.overrides``."""
    p.add_argument(
        "--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help=help_text
    )
