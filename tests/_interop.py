"""What the interop tests share: the committed fixtures and the seeded-weights script that made them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "interop"
MANIFEST = json.loads((FIX / "manifest.json").read_text())
REF = np.load(FIX / "reference.npz")


def _load_seeded():
    spec = importlib.util.spec_from_file_location("interop_seeded", ROOT / "scripts" / "interop_fixtures" / "seeded.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


seeded = _load_seeded()
