"""bench/recipe_step_cost.py: one JSON line per variant, relative to the first, and bad overrides refused."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "recipe_step_cost.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--dataset", "mnist", "--rounds", "1", "--steps", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_every_variant_gets_a_median_step_and_its_ratio_to_the_first():
    out = _run("-", "batch_size=32,precision=fp32")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r.get("variant") for r in rows[:2]] == ["-", "batch_size=32,precision=fp32"]
    assert rows[0]["vs_first"] == 1.0 and rows[1]["step_ms"] > 0 and len(rows[1]["rounds_ms"]) == 1
    assert abs(rows[1]["image_ms"] * 32 - rows[1]["step_ms"]) < 0.01  # per image of its own batch
    assert "cpu" in rows[2]["machine"]


def test_an_unknown_override_is_refused_by_name():
    out = _run("batch_sise=32")
    assert out.returncode != 0
    assert "unknown config key 'batch_sise'" in out.stderr and "Traceback" not in out.stderr
