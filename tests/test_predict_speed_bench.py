"""`nin bench --predict DIR --photos DIR2`: both image kinds, every variant against its own bare forward, the ratios
computed from the measured times (no speed is asserted)."""

import json
import statistics

from nin.bench.predict import PredictBenchOptions, format_predict, run_predict_bench
from nin.bench.predict_folders import write_digit_folder, write_photo_folder
from nin.cli import main


def test_the_json_holds_both_kinds_and_ratios_made_of_its_own_samples(tmp_path):
    digits, photos = tmp_path / "digits", tmp_path / "photos"
    write_digit_folder(digits, 12)
    write_photo_folder(photos, 3, (300, 200))
    opts = PredictBenchOptions(
        folder=str(digits),
        batch_size=4,
        workers=1,
        device="cpu",
        rounds=2,
        loop_limit=3,
        variants=("threads", "main", "draft"),
        photos=str(photos),
        photo_batch_size=2,
    )
    r = run_predict_bench(opts)
    for part, files in ((r, 14), (r["photos"], 5)):
        assert part["files"] == files and part["error_rows"] == 2 and part["default_variant"] == "threads"
        assert set(part["variants"]) == {"threads", "main", "draft"}
        for v in part["variants"].values():
            s = v["samples"]
            assert len(s["batch"]) == len(s["bare_forward"]) == 2
            per_round = [b / f for b, f in zip(s["batch"], s["bare_forward"])]
            assert v["frac_of_bare_per_round"] == per_round
            assert v["frac_of_bare"] == statistics.median(per_round)
            assert v["batch_img_s"] == statistics.median(s["batch"])
        head = part["variants"]["threads"]
        assert (
            part["batch_frac_of_bare"] == head["frac_of_bare"] and part["samples"]["batch"] == head["samples"]["batch"]
        )
        assert len(part["samples"]["per_image_loop"]) == 2
    assert r["ratios"] == {"small": r["batch_frac_of_bare"], "photos": r["photos"]["batch_frac_of_bare"]}
    assert "224" in r["photos"]["model"] and "28" in r["model"]
    d = r["photos"]["draft_effect"]
    assert d["files"] == 3 and d["changed"] == 0  # 300x200 is under twice the 256x256 warp: draft leaves it alone
    text = format_predict(r)
    assert str(photos) in text and "small" in text and "photos" in text


def test_bad_photo_options_are_one_line_errors(tmp_path, capsys):
    base = ["bench", "--predict", str(tmp_path)]
    assert main([*base, "--photos", str(tmp_path), "--photo-size", "big"]) == 2
    assert main([*base, "--write-photos", "2"]) == 2
    assert main([*base, "--variants", "fastest"]) == 2
    err = capsys.readouterr().err
    assert "WIDTHxHEIGHT" in err and "needs --photos" in err and "choose from" in err


def test_the_cli_writes_the_photos_it_measures(tmp_path, capsys):
    args = ["bench", "--predict", str(tmp_path / "d"), "--write-digits", "6", "--photos", str(tmp_path / "p")]
    args += ["--write-photos", "2", "--photo-size", "64x48", "--rounds", "1", "--variants", "main", "--json"]
    assert main([*args, "--batch-size", "4", "--photo-batch-size", "2", "--device", "cpu"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["photos"]["files"] == 4 and sorted(p.suffix for p in (tmp_path / "p").rglob("*.jpg"))[0] == ".jpg"
    assert r["settings"]["variants"] == ["main"]
