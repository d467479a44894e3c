"""`nin predict CKPT DIR --out FILE`: one row per file in input order, exit status, formats, refusals, resume."""

import json
import os

import pytest

from _predict import sorted_walk, write_broken, write_digits
from fixtures.serve.builders import save_ckpt
from nin.cli import main
from nin.predict.formats import read_table

FAST = ["--batch-size", "16", "--workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(save_ckpt(tmp_path_factory.mktemp("cli") / "m.pt"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree") / "photos"
    write_digits(root, 60, mixed=True)
    write_broken(root / "class2" / "part1")
    return root


def rows_of(path):
    columns, records = read_table(path)
    return columns, list(records)


def test_a_nested_folder_gives_one_row_per_file_in_order_with_two_error_rows(ckpt, tree, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    assert main(["predict", ckpt, str(tree), "--out", str(out), *FAST]) == 1  # 1: the run ended, rows failed
    columns, rows = rows_of(out)
    assert [r["path"] for r in rows] == sorted_walk(tree)
    assert len(rows) == 62 and sum(bool(r["error"]) for r in rows) == 2
    assert columns.names[:3] == ["path", "label", "probability"] and columns.top_k == 5
    good = [r for r in rows if not r["error"]]
    assert all(r["label"] in [str(i) for i in range(10)] and 0 < r["probability"] <= 1 for r in good)
    assert all(r["probability"] >= r["probability_2"] >= r["probability_5"] for r in good)
    err = capsys.readouterr().err
    assert "62 rows (2 errors)" in err and "see the error column" in err
    assert not (tmp_path / "preds.csv.parts").exists()  # the journal is gone once merged


def test_all_fine_exits_0_and_every_format_holds_the_same_rows(ckpt, tree, tmp_path):
    clean = str(tree / "class0")
    assert main(["predict", ckpt, clean, "--out", str(tmp_path / "p.csv"), "--top-k", "2", *FAST]) == 0
    _, want = rows_of(tmp_path / "p.csv")
    for suffix in (".jsonl", ".parquet"):
        assert main(["predict", ckpt, clean, "--out", str(tmp_path / f"p{suffix}"), "--top-k", "2", *FAST]) == 0
        assert rows_of(tmp_path / f"p{suffix}")[1] == want


def test_list_files_and_missing_paths(ckpt, tree, tmp_path, capsys):
    files = sorted_walk(tree / "class1")[:5]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(reversed(files)) + "\n")
    out = tmp_path / "l.jsonl"
    missing = str(tmp_path / "nope.png")
    assert main(["predict", ckpt, f"@{listing}", missing, "--out", str(out), *FAST]) == 1
    _, rows = rows_of(out)
    assert [r["path"] for r in rows] == [*reversed(files), missing]
    assert rows[-1]["error"] == f"{missing} does not exist"
    assert f"warning: {missing} does not exist" in capsys.readouterr().err


def test_existing_output_is_never_replaced_silently(ckpt, tree, tmp_path, capsys):
    out = tmp_path / "p.csv"
    out.write_text("precious\n")
    assert main(["predict", ckpt, str(tree / "class0"), "--out", str(out), *FAST]) == 2
    assert "add --resume" in capsys.readouterr().err and out.read_text() == "precious\n"
    assert main(["predict", ckpt, str(tree / "class0"), "--out", str(out), "--overwrite", *FAST]) == 0
    assert len(rows_of(out)[1]) == len(sorted_walk(tree / "class0"))


def test_resume_of_a_finished_file_adds_only_new_files_and_keeps_the_options(ckpt, tmp_path, capsys):
    folder = tmp_path / "grow"
    write_digits(folder, 10, nested=False)
    out = tmp_path / "g.csv"
    assert main(["predict", ckpt, str(folder), "--out", str(out), *FAST]) == 0
    first = out.read_text()
    write_digits(folder, 3, nested=False, start=10)  # three new files arrive
    assert main(["predict", ckpt, str(folder), "--out", str(out), "--resume", *FAST]) == 0
    assert out.read_text().startswith(first)
    assert [r["path"] for r in rows_of(out)[1]] == sorted_walk(folder)
    assert "predicted 3, 10 already there" in capsys.readouterr().err
    assert main(["predict", ckpt, str(folder), "--out", str(out), "--resume", "--top-k", "3", *FAST]) == 2
    assert "--top-k 5" in capsys.readouterr().err


def test_without_out_a_folder_is_printed_as_it_goes(ckpt, tree, capsys):
    folder = str(tree / "class1" / "part0")
    assert main(["predict", ckpt, folder, "--top-k", "2", *FAST]) == 0
    text = capsys.readouterr().out
    files = sorted_walk(tree / "class1" / "part0")
    assert [ln for ln in text.splitlines() if not ln.startswith("  ")] == files
    assert text.count("%") == 2 * len(files)
    assert main(["predict", ckpt, folder, str(tree / "class2" / "part1"), "--json", *FAST]) == 1
    body = json.loads(capsys.readouterr().out)
    assert len(body["predictions"]) == len(files) + len(sorted_walk(tree / "class2" / "part1"))
    assert sum("error" in p for p in body["predictions"]) == 2


def test_usage_errors_exit_2_with_one_line(ckpt, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    cases = [
        ([str(empty)], "no image files"),
        ([str(empty), "--out", str(tmp_path / "x.xlsx")], ".csv, .jsonl or .parquet"),
        ([str(empty), "--resume"], "need --out"),
        ([f"@{tmp_path / 'nolist.txt'}"], "does not exist"),
        ([f"@{tmp_path / 'nolist.txt'}", "--out", str(tmp_path / "z.csv")], "does not exist"),
        ([str(empty), "--batch-size", "0", "--out", str(tmp_path / "y.csv")], "batch_size"),
    ]
    for extra, message in cases:
        assert main(["predict", ckpt, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not any(os.path.exists(tmp_path / f"{n}.csv{s}") for n in "yz" for s in ("", ".parts"))


def test_cam_box_columns_hold_the_top_class_box(ckpt, tree, tmp_path, capsys):
    out = tmp_path / "cam.csv"
    assert main(["predict", ckpt, str(tree / "class0" / "part1"), "--out", str(out), "--cam-box", *FAST]) == 0
    columns, rows = rows_of(out)
    assert columns.cam_box and columns.names[-5:] == ["cam_left", "cam_top", "cam_right", "cam_bottom", "error"]
    for r in rows:
        assert 0 <= r["cam_left"] <= r["cam_right"] < 28 and 0 <= r["cam_top"] <= r["cam_bottom"] < 28
    assert main(["predict", ckpt, str(tree / "class0" / "part1"), "--cam-box", "--json", *FAST]) == 0
    printed = json.loads(capsys.readouterr().out)["predictions"]
    assert [p["cam_box"] for p in printed] == [[r[c] for c in columns.names[-5:-1]] for r in rows]
