"""`Predictor.predict_many`: the batched, worker-decoded path gives what `Predictor.predict` gives, file by file."""

import itertools
import json

import pytest
import torch

from _predict import write_broken, write_digits
from fixtures.serve.builders import save_ckpt
from nin.errors import ConfigError
from nin.predict import expand_inputs
from nin.serve.predictor import Predictor
from nin.viz.cam import cam_box


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory):
    return save_ckpt(tmp_path_factory.mktemp("batch") / "m.pt")


@pytest.fixture(scope="module")
def predictor(ckpt_path):
    return Predictor.from_checkpoint(ckpt_path, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    write_digits(root / "digits", 40, mixed=True)
    write_broken(root / "digits" / "class1")
    return root


def _paths(folder):
    return [*expand_inputs([str(folder / "digits")]), str(folder / "missing.png"), str(folder / "digits")]


def test_rows_match_per_image_predict_in_input_order_with_error_rows_in_place(predictor, folder):
    paths = _paths(folder)
    rows = list(predictor.predict_many(paths, batch_size=8, workers=0, top_k=3))
    assert [r.path for r in rows] == paths and [r.index for r in rows] == list(range(len(paths)))
    errors = {r.path: r.error for r in rows if r.error}
    assert set(errors) == {str(folder / "digits/class1/truncated.png"), str(folder / "digits/class1/notes.jpg")} | {
        str(folder / "missing.png"),
        str(folder / "digits"),
    }
    assert "could not be decoded" in errors[str(folder / "digits/class1/truncated.png")]
    assert "not an image" in errors[str(folder / "digits/class1/notes.jpg")]
    assert errors[str(folder / "missing.png")].endswith("does not exist")
    assert errors[str(folder / "digits")].endswith("is a folder, not an image file")
    for row in rows:
        if row.ok:
            want = predictor.predict(row.path, top_k=3)
            assert row.prediction.labels == want.labels, row.path
            assert row.prediction.probabilities == pytest.approx(want.probabilities, abs=1e-5)
        else:
            assert row.prediction is None


def test_worker_processes_give_exactly_what_in_process_decoding_gives(predictor, folder):
    paths = _paths(folder)
    here = list(predictor.predict_many(paths, batch_size=8, workers=0))
    workers = list(predictor.predict_many(paths, batch_size=8, workers=2))
    assert workers == here  # same batches, same numbers


def test_the_input_is_streamed(predictor, folder):
    """An endless stream of paths: the first rows come out, having read only a few batches ahead."""
    files = list(expand_inputs([str(folder / "digits" / "class0")]))
    pulled = itertools.count()

    def endless():
        for i in itertools.count():
            next(pulled)
            yield files[i % len(files)]

    rows = list(itertools.islice(predictor.predict_many(endless(), batch_size=4, workers=1), 10))
    assert [r.path for r in rows] == [files[i % len(files)] for i in range(10)]
    assert next(pulled) <= 4 * (3 + 4 + 1)  # 3 batches taken + the loader's 4 in flight per worker + 1 started


def test_cam_boxes_are_the_top_class_maps_boxes(predictor, folder):
    paths = list(expand_inputs([str(folder / "digits" / "class2")]))[:6]
    rows = list(predictor.predict_many(paths, batch_size=4, workers=0, top_k=2, cam_box=True))
    maps = predictor.class_maps(paths)  # (N, K, 28, 28), upsampled as for the page's overlay
    for row, m in zip(rows, maps):
        assert row.box == cam_box(m[row.prediction.indices[0]])
        left, top, right, bottom = row.box
        assert 0 <= left <= right < 28 and 0 <= top <= bottom < 28


def test_options_are_checked_when_called_not_at_the_first_row(predictor, tmp_path):
    for kw in ({"batch_size": 0}, {"workers": -1}, {"top_k": 0}, {"batch_size": 2.5}):
        with pytest.raises(ConfigError):
            predictor.predict_many(["x.png"], **kw)
    fc = save_ckpt(tmp_path / "fc.pt", model="nin_cifar10_fc", shape=(3, 32, 32))
    with pytest.raises(ConfigError, match="needs class maps"):
        Predictor.from_checkpoint(fc, device="cpu").predict_many(["x.png"], cam_box=True)


def test_onnx_export_runs_through_the_same_batch_path(predictor, ckpt_path, folder, tmp_path):
    from nin.export import export_onnx

    onnx_file = export_onnx(ckpt_path, tmp_path / "m.onnx").path
    ox = Predictor.from_checkpoint(onnx_file)
    paths = _paths(folder)
    got = list(ox.predict_many(paths, batch_size=16, workers=1, cam_box=True))
    want = list(predictor.predict_many(paths, batch_size=16, workers=0, cam_box=True))
    assert [r.error for r in got] == [r.error for r in want]
    for a, b in zip(got, want):
        if a.ok:
            assert a.prediction.indices[0] == b.prediction.indices[0]
            torch.testing.assert_close(
                torch.tensor(a.prediction.probabilities), torch.tensor(b.prediction.probabilities), atol=1e-5, rtol=0
            )
            assert a.box is not None


def test_a_resumed_run_keeps_both_rows_of_a_path_given_twice(predictor, folder, tmp_path):
    """The journal of an interrupted run remembers rows by place and path: a repeat of a written path is
    predicted on resume, so the file equals the uninterrupted run's."""
    from nin.predict import predict_to_file
    from nin.predict.formats import read_table

    files = list(expand_inputs([str(folder / "digits")]))[:5]
    paths = files + files[:2]  # the first two again, as `nin predict a.png folder/` gives them
    reference = tmp_path / "reference.csv"
    predict_to_file(predictor, paths, reference, batch_size=2, workers=0, top_k=2)

    def interrupted():
        yield from paths[:5]  # the first occurrences only; the batches that finish go to the journal
        raise KeyboardInterrupt

    out = tmp_path / "preds.csv"
    with pytest.raises(KeyboardInterrupt):
        predict_to_file(predictor, interrupted(), out, batch_size=2, workers=0, top_k=2)
    journal = [json.loads(line) for part in (tmp_path / "preds.csv.parts").glob("*.jsonl") for line in part.open()]
    assert not out.exists() and 0 in {r["i"] for r in journal}  # the first copy of paths[0] is written
    summary = predict_to_file(predictor, paths, out, batch_size=2, workers=0, top_k=2, resume=True)
    assert summary.skipped == len(journal) and summary.predicted == len(paths) - len(journal)
    assert list(read_table(out)[1]) == list(read_table(reference)[1])
