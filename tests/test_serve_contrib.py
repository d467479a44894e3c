"""`nin serve --modelhub-contrib DIR`: the card a contribution folder gives, and cards that cannot describe the
model stopping start-up in one line that names the field. (ModelHub's own suites: test_modelhub_suites.py.)"""

import io
import json
import os
import warnings
import zipfile

import pytest

from fixtures.serve.builders import digit, png_bytes, save_ckpt
from fixtures.serve.contribs import DIGIT_NAMES, MODEL_LICENSE, SAMPLE_LICENSE, digit_card, digit_contrib
from nin.cli import main
from nin.serve.app import create_app
from nin.serve.predictor import Predictor
from nin.serve.settings import ENV_VAR, ServeSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx vs httpx2
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_ckpt(tmp_path_factory.mktemp("contrib") / "digits.pt", dataset="mnist_embedded")


@pytest.fixture(scope="module")
def predictor(ckpt):
    return Predictor.from_checkpoint(ckpt, device="cpu", precision="fp32")


def serve_contrib(predictor, ckpt, root, **settings):
    settings = ServeSettings(checkpoint=str(ckpt), modelhub_contrib=str(root), **settings)
    return TestClient(create_app(settings, predictor=predictor))


def test_the_card_is_served_as_written_with_the_input_under_single(predictor, ckpt, tmp_path):
    card = digit_card()
    card["model"]["io"]["input"] = {"format": ["image/png", "image/jpeg"], "dim_limits": [{"min": 1, "max": 4}]}
    card["modelhub"] = {"top": 3, "sort": False, "allow_user_test": True}
    root = digit_contrib(tmp_path, card)
    with serve_contrib(predictor, ckpt, root) as c:
        config = c.get("/api/get_config").json()
    nin = config["modelhub"].pop("nin")
    assert nin["classes"] == DIGIT_NAMES and nin["input"] == {"channels": 1, "height": 28, "width": 28}
    assert config["model"]["io"]["input"] == {
        "format": ["image/png", "image/jpeg"],
        "single": {"format": ["image/png", "image/jpeg"], "dim_limits": [{"min": 1, "max": 4}]},
    }
    config["model"]["io"]["input"] = card["model"]["io"]["input"]
    assert config == card  # everything else exactly as the card says


def test_the_cards_top_and_sort_are_the_defaults_of_every_answer(predictor, ckpt, tmp_path):
    card = digit_card()
    card["modelhub"] = {"top": 3, "sort": False}
    with serve_contrib(predictor, ckpt, digit_contrib(tmp_path, card)) as c:
        data = png_bytes(digit(42))
        probs = predictor.probabilities(digit(42))[0]
        best3 = sorted(probs.argsort(descending=True)[:3].tolist())

        def labels(query=""):
            r = c.post(f"/api/predict{query}", files={"file": ("d.png", data, "image/png")})
            return [row["label"] for row in r.json()["output"][0]["prediction"]]

        assert labels() == [DIGIT_NAMES[i] for i in best3]  # the 3 most probable, in class order
        assert labels("?sort=true") == [DIGIT_NAMES[i] for i in probs.argsort(descending=True)[:3]]
        assert labels("?top=10") == DIGIT_NAMES
        assert c.get("/api/predict_sample", params={"filename": "digit-b.jpg"}).status_code == 200  # any sample


def test_class_names_come_from_the_checkpoint_without_labels_json(predictor, ckpt, tmp_path):
    with serve_contrib(predictor, ckpt, digit_contrib(tmp_path, labels=None)) as c:
        body = c.get("/api/predict_sample", params={"filename": "digit-a.png"}).json()
        assert [row["label"] for row in body["output"][0]["prediction"]] == predictor.classes
        legal = c.get("/api/get_legal").json()
        assert (legal["model_license"], legal["sample_data_license"]) == (MODEL_LICENSE, SAMPLE_LICENSE)
        z = zipfile.ZipFile(io.BytesIO(c.get("/api/get_model_files").content))
        names = ["model/", "model/README.md", "model/config.json", "model/digits.pt", "model/thumbnail.jpg"]
        assert sorted(z.namelist()) == names


def _card_with(change):
    card = digit_card()
    change(card)
    return card


def _set(path, value):
    def change(card):
        *parents, last = path.split(".")
        node = card
        for key in parents:
            node = node[key]
        node[last] = value

    return change


BAD_CARDS = [
    ("mask output", _set("model.io.output", [{"name": "mask", "type": "mask_image"}]), "model.io.output"),
    ("two outputs", _set("model.io.output", [{"name": "p", "type": "label_list"}] * 2), "model.io.output"),
    ("dicom input", _set("model.io.input.format", ["application/dicom"]), "model.io.input.format lists"),
    ("no format", _set("model.io.input.single.format", []), "model.io.input.single.format"),
    ("two inputs", _set("model.io.input", {"format": ["application/json"], "t1": {}, "t2": {}}), "model.io.input"),
    ("top 0", _set("modelhub.top", 0), "modelhub.top"),
    ("top 11", _set("modelhub.top", 11), "from 1 to 10"),
    ("sort", _set("modelhub.sort", "yes"), "modelhub.sort"),
    ("no id", _set("id", ""), "id must be"),
    ("no name", _set("meta", {}), "meta.name"),
]


@pytest.mark.parametrize("what,change,field", BAD_CARDS, ids=[b[0] for b in BAD_CARDS])
def test_a_card_that_cannot_describe_the_model_stops_start_up(ckpt, tmp_path, capsys, what, change, field):
    root = digit_contrib(tmp_path, _card_with(change))
    assert main(["serve", str(ckpt), "--modelhub-contrib", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert field in err and "config.json" in err and len(err.splitlines()) == 1, err


def test_broken_folders_stop_start_up_in_one_line(ckpt, tmp_path, capsys):
    def fails(root, *extra):
        assert main(["serve", str(ckpt), "--modelhub-contrib", str(root), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return err

    assert "holds 9 names; the model has 10 classes" in fails(digit_contrib(tmp_path / "a", labels=DIGIT_NAMES[:9]))
    root = digit_contrib(tmp_path / "b")
    (root / "model" / "thumbnail.jpg").unlink()
    assert "thumbnail.jpg is missing" in fails(root)
    (root / "model" / "config.json").write_text("{not json")
    (root / "model" / "thumbnail.jpg").write_bytes(b"")
    assert "is not valid JSON (line 1" in fails(root)
    assert "is not a folder" in fails(tmp_path / "nowhere")
    assert "drop --samples" in fails(digit_contrib(tmp_path / "c"), "--samples", str(tmp_path / "c"))


def test_a_worker_with_a_bad_card_reports_it_on_readyz(ckpt, predictor, tmp_path):
    root = digit_contrib(tmp_path, _card_with(_set("modelhub.top", 99)))
    with serve_contrib(predictor, ckpt, root) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "modelhub.top" in r.json()["error"]


def test_cli_options_reach_the_workers(ckpt, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **kw: calls.append(kw))
    monkeypatch.delenv(ENV_VAR, raising=False)
    root = digit_contrib(tmp_path)
    argv = ["serve", str(ckpt), "--modelhub-contrib", str(root), "--errors", "http", "--allow-fileurl"]
    assert main([*argv, "--fileurl-allow-hosts", "127.0.0.1,images.intranet"]) == 0
    settings = ServeSettings.from_json(os.environ[ENV_VAR])
    assert calls and settings.modelhub_contrib == str(root.resolve()) and settings.errors == "http"
    assert settings.fileurl_allow_hosts == ("127.0.0.1", "images.intranet") and settings.precision == "fp32"
    defaults = ServeSettings()
    assert (defaults.errors, defaults.allow_fileurl, defaults.modelhub_contrib) == ("modelhub", False, "")


def test_the_card_in_the_zip_is_the_contributions_file(predictor, ckpt, tmp_path):
    root = digit_contrib(tmp_path)
    with serve_contrib(predictor, ckpt, root) as c:
        z = zipfile.ZipFile(io.BytesIO(c.get("/api/get_model_files").content))
    assert z.read("model/config.json") == (root / "model" / "config.json").read_bytes()
    assert json.loads(z.read("model/labels.json")) == {str(i): n for i, n in enumerate(DIGIT_NAMES)}
    assert z.getinfo("model/").is_dir() and not any(n.startswith("license/") for n in z.namelist())
