"""`nin bench --predict DIR`: the three ways run on the same files and the report adds up (no speed is asserted)."""

import json

from nin.bench.predict import format_predict
from nin.cli import main


def test_bench_predict_writes_digits_and_reports_the_three_ways(tmp_path, capsys):
    folder = tmp_path / "digits"
    args = [
        "bench",
        "--predict",
        str(folder),
        "--write-digits",
        "40",
        "--rounds",
        "1",
        "--batch-size",
        "16",
        "--loop-limit",
        "8",
    ]
    assert main([*args, "--workers", "0", "--precision", "fp32", "--json", "--out", str(tmp_path / "b.json")]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r == json.loads((tmp_path / "b.json").read_text())
    assert r["files"] == 42 and r["error_rows"] == 2 and r["loop_files"] == 8
    assert len({p.parent.parent.name for p in folder.glob("*/*/*.png")}) == 10  # every class, nested folders
    for key in ("batch_img_s", "batch_wall_img_s", "bare_forward_img_s", "per_image_loop_img_s"):
        assert r[key] > 0 and len(r["samples"][key.removesuffix("_img_s")]) == 1
    assert r["batch_frac_of_bare"] == r["batch_img_s"] / r["bare_forward_img_s"]  # one round: its own ratio
    assert r["batch_vs_loop"] == r["batch_img_s"] / r["per_image_loop_img_s"]
    assert "batch path / bare forward" in format_predict(r)
    assert "fp32" in r["model"] and r["machine"]["cpu"]
    assert main(["bench", "--predict", str(tmp_path / "nowhere")]) == 2  # not a folder: says --write-digits
