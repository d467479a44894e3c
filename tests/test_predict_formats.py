"""Result files: CSV, JSON lines and Parquet hold the same flat rows and read back exactly."""

import json
import sys

import pytest

from nin.errors import ConfigError, DataError
from nin.predict.formats import output_format, read_table, write_table
from nin.predict.parts import DoneSet, drop_damaged, list_parts, merged_records, write_part
from nin.predict.rows import Columns, PredictionRow
from nin.serve.predictor import Prediction

COLUMNS = Columns(3, cam_box=True)


def records():
    tricky = 'a folder, with "quotes"/and\nnewline/ünïcødé.png'
    ok = PredictionRow(
        0, tricky, Prediction(["7", "1", "9"], [0.75, 0.125, 0.0625000001], [7, 1, 9]), box=(0, 2, 27, 25)
    )
    bad = PredictionRow(1, "broken.png", None, "broken.png could not be decoded: truncated")
    two = PredictionRow(2, "two.png", Prediction(["a", "b"], [0.5, 0.5], [0, 1]))  # fewer classes than columns
    undecodable = PredictionRow(3, "caf\udce9.png", Prediction(["x"], [1.0], [0]))  # a non-UTF-8 name on Linux
    return [r.record(COLUMNS) for r in (ok, bad, two, undecodable)]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_every_format_round_trips_rows_exactly(tmp_path, suffix):
    rows = records() if suffix != ".parquet" else records()[:3]  # Parquet strings are UTF-8 only
    path = tmp_path / f"preds{suffix}"
    assert write_table(path, COLUMNS, iter(rows)) == len(rows)
    columns, back = read_table(path)
    assert columns == COLUMNS
    assert list(back) == rows


def test_the_columns_are_flat_and_named_the_same_everywhere(tmp_path):
    assert COLUMNS.names == [
        "path",
        "label",
        "probability",
        "label_2",
        "probability_2",
        "label_3",
        "probability_3",
        "cam_left",
        "cam_top",
        "cam_right",
        "cam_bottom",
        "error",
    ]
    assert Columns(1).names == ["path", "label", "probability", "error"]
    write_table(tmp_path / "p.csv", COLUMNS, records())
    header = (tmp_path / "p.csv").read_text(encoding="utf-8", errors="surrogateescape").splitlines()[0]
    assert header.split(",") == COLUMNS.names
    write_table(tmp_path / "p.jsonl", COLUMNS, records())
    first = (tmp_path / "p.jsonl").read_text(encoding="utf-8", errors="surrogateescape").splitlines()[0]
    assert list(json.loads(first)) == COLUMNS.names
    bad = json.loads((tmp_path / "p.jsonl").read_text(errors="surrogateescape").splitlines()[1])
    assert bad["label"] == "" and bad["probability"] is None and bad["cam_left"] is None and bad["error"]


def test_an_empty_run_writes_a_valid_empty_file(tmp_path):
    for suffix in (".csv", ".parquet"):
        write_table(tmp_path / f"e{suffix}", COLUMNS, iter(()))
        columns, back = read_table(tmp_path / f"e{suffix}")
        assert columns == COLUMNS and list(back) == []


def test_unknown_suffix_and_foreign_files_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"\.csv, \.jsonl or \.parquet"):
        output_format(tmp_path / "preds.xlsx")
    (tmp_path / "other.csv").write_text("name,score\nx,1\n")
    with pytest.raises(DataError, match="not a results file"):
        read_table(tmp_path / "other.csv")


def test_parquet_without_pyarrow_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ConfigError, match=r"pip install 'nin\[parquet\]'"):
        output_format(tmp_path / "preds.parquet")
    assert output_format(tmp_path / "preds.csv") == "csv"  # the other formats need nothing


def test_parts_merge_back_into_input_order_and_the_done_set_knows_them(tmp_path):
    rows = [PredictionRow(i, f"{i}.png", Prediction(["a"], [1.0], [0])).record(Columns(1)) for i in range(10)]
    # Two ranks took alternate chunks of 2; a second run (a resume) wrote the last chunk of rank 1.
    write_part(tmp_path, 1, 0, 0, [(0, rows[0]), (1, rows[1])])
    write_part(tmp_path, 1, 1, 1, [(2, rows[2]), (3, rows[3])])
    write_part(tmp_path, 1, 0, 2, [(4, rows[4]), (5, rows[5])])
    write_part(tmp_path, 1, 1, 3, [(6, rows[6]), (7, rows[7])])
    write_part(tmp_path, 2, 0, 4, [(8, rows[8]), (9, rows[9])])
    (tmp_path / "0002-0001-0000000005.jsonl.tmp").write_text('{"i": 10, "path": "torn')  # a killed write
    assert sorted(list_parts(tmp_path)) == [(1, 0), (1, 1), (2, 0)]
    assert list(merged_records(tmp_path)) == rows
    done = DoneSet(r["path"] for r in rows[:5])
    assert len(done) == 5 and "4.png" in done and "5.png" not in done and "x" not in DoneSet()
    # A merge stopped after publishing --out: rows already in the base are not written twice.
    assert list(merged_records(tmp_path, rows[:8], DoneSet(r["path"] for r in rows[:8]))) == rows


def test_parts_damaged_from_outside_are_dropped_to_be_predicted_again(tmp_path):
    rec = PredictionRow(0, "0.png", Prediction(["a"], [1.0], [0])).record(Columns(1))
    for chunk in range(3):
        write_part(tmp_path, 1, 0, chunk, [(chunk, {**rec, "path": f"{chunk}.png"})])
    parts = list_parts(tmp_path)[(1, 0)]
    parts[1].write_bytes(b"")  # e.g. a copy that lost its data
    parts[2].write_bytes(parts[2].read_bytes()[:20])  # torn
    assert drop_damaged(tmp_path) == 2
    assert [r["path"] for r in merged_records(tmp_path)] == ["0.png"]
