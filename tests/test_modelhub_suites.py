"""ModelHub's own test suites, rewritten as HTTP checks against real `nin serve --modelhub-contrib` processes.

Sources (read, not copied; each test names the check it stands for):
- modelhub-ai/modelhub-engine ``framework/modelhubapi_tests/restapi_test.py`` (class TestModelHubRESTAPI_SI)
  with the asserts of ``apitestbase.py``; ModelHub's mock model returns fixed values, so "the expected mock
  values" become the contribution's own files and the model's own outputs here;
- the same repository's ``pythonapi_test.py``, the checks that the REST API exposes too;
- modelhub-ai/modelhub ``utilities/test_integration.py``, the test every contributed model must pass. Its
  first two checks (the model folder's ``init/init.json``, a running Docker container) are about ModelHub's
  Docker tooling; the `served` fixture starting the server and waiting for /readyz stands for them.

Both contributions are served once per module: ModelHub's NIN folder with seeded ImageNet NIN weights written
by the MXNet writer and imported with ``nin import mxnet ... --preprocess modelhub`` (7.6M parameters,
224x224), and a folder the tests write for the digit model (PNG only, like ModelHub's mock). The fileurl checks
fetch from a local file server that the server allows with ``--fileurl-allow-hosts 127.0.0.1``.
"""

import functools
import io
import json
import mimetypes
import threading
import zipfile
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jsonschema
import pytest
import torch
from PIL import Image

from fixtures.serve.builders import save_ckpt
from fixtures.serve.contribs import digit_contrib, imagenet_params, modelhub_nin_contrib, running_server
from nin.cli import main
from nin.data.images import IMAGE_SUFFIXES
from nin.serve.predictor import Predictor

SCHEMA = Path(__file__).parent / "fixtures" / "serve" / "modelhub_config_schema.json"


@pytest.fixture(scope="session")
def imagenet_checkpoint(tmp_path_factory):
    """Item 5's command on ModelHub's own graph: `nin import mxnet nin-symbol.json nin-0000.params
    --preprocess modelhub`, with seeded weights (one checkpoint per test session)."""
    folder = tmp_path_factory.mktemp("imagenet")
    symbol = modelhub_nin_contrib(folder / "graph") / "model" / "nin-symbol.json"
    params = imagenet_params(folder / "nin-0000.params")
    out = folder / "nin_imagenet.pt"
    assert main(["import", "mxnet", str(symbol), str(params), "--preprocess", "modelhub", "-o", str(out)]) == 0
    return out


@dataclass
class Served:
    name: str
    base: str
    root: Path  # the contribution folder being served
    checkpoint: Path
    predictor: Predictor  # the same model in this process, fp32, for the expected numbers
    tmp: Path  # the server's temporary folder (ModelHub's "working folder")
    file_base: str  # the local file server holding an accepted and an unaccepted image

    @property
    def card(self) -> dict:
        return json.loads((self.root / "model" / "config.json").read_text())

    @property
    def labels(self) -> list[str]:
        path = self.root / "model" / "labels.json"
        names = json.loads(path.read_text()) if path.is_file() else None
        return [names[str(i)] for i in range(len(names))] if names else self.predictor.classes

    def sample_names(self) -> list[str]:
        return sorted(p.name for p in (self.root / "sample_data").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

    def accepted_sample(self) -> str:
        return next(n for n in self.sample_names() if mimetypes.guess_type(n)[0] in self.accepted())

    def accepted(self) -> list[str]:
        return self.card["model"]["io"]["input"]["format"]

    def get(self, route: str, **params) -> httpx.Response:
        return httpx.get(f"{self.base}/api/{route}", params=params or None, timeout=60)

    def post_file(self, data: bytes, filename: str) -> httpx.Response:
        """As apitestbase's _post_predict_request_on_sample_image: multipart field `file`, named test_image.EXT."""
        ext = Path(filename).suffix
        ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return httpx.post(f"{self.base}/api/predict", files={"file": (f"test_image{ext}", data, ctype)}, timeout=60)

    def api_json(self, route: str):
        """test_integration's get_api_response_as_json: a 200 or a 400 carries JSON; anything else is a failure."""
        r = httpx.get(f"{self.base}/api/{route}", timeout=60)
        assert r.status_code in (200, 400), (route, r.status_code, r.text[:200])
        return r.json()

    def expected_rows(self, data: bytes) -> list[tuple[str, float]]:
        """What the card's model answers for an image: its modelhub.top classes, ordered as modelhub.sort says."""
        probs = self.predictor.probabilities(data)[0]
        top, sort = self.card["modelhub"].get("top"), self.card["modelhub"].get("sort")
        by_probability = probs.argsort(descending=True).tolist()
        if top:
            order = by_probability[:top] if sort is not False else sorted(by_probability[:top])
        else:
            order = by_probability if sort else list(range(len(probs)))
        return [(self.labels[i], float(probs[i])) for i in order]


def unaccepted_image(served: Served) -> tuple[str, bytes]:
    """A sample whose type the card does not accept (ModelHub's mock: its .jpg), else one converted to GIF."""
    for name in served.sample_names():
        if mimetypes.guess_type(name)[0] not in served.accepted():
            return name, (served.root / "sample_data" / name).read_bytes()
    buf = io.BytesIO()
    Image.open(served.root / "sample_data" / served.accepted_sample()).convert("RGB").save(buf, format="GIF")
    return "converted.gif", buf.getvalue()


def _file_server(folder: Path):
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module", params=["modelhub-nin", "digits"])
def served(request, tmp_path_factory):
    work = tmp_path_factory.mktemp(request.param)
    if request.param == "modelhub-nin":
        root, ckpt = modelhub_nin_contrib(work), request.getfixturevalue("imagenet_checkpoint")
    else:
        root, ckpt = digit_contrib(work), save_ckpt(work / "digits.pt", dataset="mnist_embedded")
    options = ["--modelhub-contrib", str(root), "--precision", "fp32"]
    options += ["--allow-fileurl", "--fileurl-allow-hosts", "127.0.0.1"]
    with running_server(ckpt, *options, workdir=work) as base:
        s = Served(request.param, base, root, ckpt, Predictor.from_checkpoint(ckpt, "cpu", "fp32"), work / "tmp", "")
        files = work / "files"
        files.mkdir()
        sample = s.accepted_sample()
        (files / sample).write_bytes((root / "sample_data" / sample).read_bytes())
        name, data = unaccepted_image(s)
        (files / name).write_bytes(data)
        server = _file_server(files)
        s.file_base = f"http://127.0.0.1:{server.server_address[1]}"
        yield s
        server.shutdown()


def _rows(body: dict) -> list[tuple[str, float]]:
    return [(row["label"], row["probability"]) for row in body["output"][0]["prediction"]]


def assert_expected_prediction(served: Served, body: dict, data: bytes) -> None:
    got, want = _rows(body), served.expected_rows(data)
    assert [label for label, _ in got] == [label for label, _ in want]
    torch.testing.assert_close(torch.tensor([p for _, p in got]), torch.tensor([p for _, p in want]), atol=1e-5, rtol=0)


def assert_expected_meta_info(served: Served, body: dict) -> None:
    card = served.card
    out = body["output"][0]
    assert (out["type"], out["name"]) == (card["model"]["io"]["output"][0]["type"], "probabilities")
    assert out["shape"] == [card["modelhub"].get("top") or len(served.labels)]
    assert body["model"] == {"id": card["id"], "name": card["meta"]["name"]}


# --- modelhub-engine restapi_test.py (TestModelHubRESTAPI_SI) ------------------------------------------
def test_get_config_returns_correct_dict(served):
    """restapi_test.test_get_config_returns_correct_dict (apitestbase.assert_config_contains_correct_dict)."""
    r = served.get("get_config")
    assert r.status_code == 200
    config = r.json()
    assert config["id"] == served.card["id"] and config["meta"]["name"] == served.card["meta"]["name"]


def test_get_legal_returns_expected_keys(served):
    """restapi_test.test_get_legal_returns_expected_keys."""
    r = served.get("get_legal")
    assert r.status_code == 200 and "error" not in r.json()
    assert sorted(r.json()) == ["model_license", "modelhub_acknowledgements", "modelhub_license", "sample_data_license"]


def test_get_legal_returns_expected_mock_values(served):
    """restapi_test.test_get_legal_returns_expected_mock_values: the texts of license/model, license/sample_data."""
    legal = served.get("get_legal").json()
    assert legal["model_license"] == (served.root / "license" / "model").read_text()
    assert legal["sample_data_license"] == (served.root / "license" / "sample_data").read_text()


def test_get_model_io_returns_expected_mock_values(served):
    """restapi_test.test_get_model_io_returns_expected_mock_values (ModelHub >= 0.4 reads the input under
    `single`; ModelHub's NIN card has the older layout, served moved there)."""
    r = served.get("get_model_io")
    assert r.status_code == 200
    io_, card_input = r.json(), served.card["model"]["io"]["input"]
    single = io_["input"]["single"]
    assert single["format"] == card_input["format"] == io_["input"]["format"]
    limits = card_input.get("single", card_input).get("dim_limits")
    assert single["dim_limits"] == limits and single["dim_limits"][0] == {"min": 1, "max": 4}
    assert all(limit["min"] >= 1 for limit in single["dim_limits"][1:])
    assert io_["output"][0]["name"] == "probabilities" and io_["output"][0]["type"] == "label_list"


def test_get_samples_returns_path_to_mock_samples(served):
    """restapi_test.test_get_samples_returns_path_to_mock_samples."""
    r = served.get("get_samples")
    assert r.status_code == 200
    assert sorted(r.json()) == [f"{served.base}/api/samples/{name}" for name in served.sample_names()]


def test_samples_routes_correct(served):
    """restapi_test.test_samples_routes_correct: each sample with its content type, byte for byte."""
    for name in served.sample_names():
        r = served.get(f"samples/{name}")
        assert r.status_code == 200 and r.headers["content-type"] == mimetypes.guess_type(name)[0]
        assert r.content == (served.root / "sample_data" / name).read_bytes()


def test_thumbnail_routes_correct(served):
    """restapi_test.test_thumbnail_routes_correct: the card's model/thumbnail.jpg."""
    r = served.get("thumbnail/thumbnail.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == (served.root / "model" / "thumbnail.jpg").read_bytes()


def test_get_model_files_returns_zip(served):
    """restapi_test.test_get_model_files_returns_zip."""
    r = served.get("get_model_files")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"


def test_get_model_files_returned_zip_has_mock_content(served):
    """restapi_test.test_get_model_files_returned_zip_has_mock_content: the model folder as ModelHub zips it
    (everything under model/, nothing else), the weights with it."""
    z = zipfile.ZipFile(io.BytesIO(served.get("get_model_files").content))
    files = sorted(p for p in (served.root / "model").iterdir())
    want = ["model/", *(f"model/{p.name}" for p in files), f"model/{served.checkpoint.name}"]
    assert sorted(z.namelist()) == sorted(want)
    for p in files:
        assert z.read(f"model/{p.name}") == p.read_bytes(), p.name
    assert z.read(f"model/{served.checkpoint.name}") == served.checkpoint.read_bytes()


def test_predict_by_post_returns_expected_mock_prediction(served):
    """restapi_test.test_predict_by_post_returns_expected_mock_prediction."""
    data = (served.root / "sample_data" / served.accepted_sample()).read_bytes()
    r = served.post_file(data, served.accepted_sample())
    assert r.status_code == 200
    assert_expected_prediction(served, r.json(), data)


def test_predict_by_post_returns_expected_mock_meta_info(served):
    """restapi_test.test_predict_by_post_returns_expected_mock_meta_info."""
    data = (served.root / "sample_data" / served.accepted_sample()).read_bytes()
    r = served.post_file(data, served.accepted_sample())
    assert r.status_code == 200
    assert_expected_meta_info(served, r.json())


def test_predict_by_post_returns_error_on_unsupported_file_type(served):
    """restapi_test.test_predict_by_post_returns_error_on_unsupported_file_type."""
    r = served.post_file(*reversed(unaccepted_image(served)))
    assert r.status_code == 400
    assert "Incorrect file type." in r.json()["error"]


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_working_folder_empty_after_predict_by_post(served):
    """restapi_test.test_working_folder_empty_after_predict_by_post: nothing of the upload is left on disk."""
    before = _listing(served.tmp)
    data = (served.root / "sample_data" / served.accepted_sample()).read_bytes()
    assert served.post_file(data, served.accepted_sample()).status_code == 200
    assert _listing(served.tmp) == before


def test_predict_by_url_returns_expected_mock_prediction(served):
    """restapi_test.test_predict_by_url_returns_expected_mock_prediction (a local file server, allowed)."""
    r = served.get("predict", fileurl=f"{served.file_base}/{served.accepted_sample()}")
    assert r.status_code == 200
    assert_expected_prediction(served, r.json(), (served.root / "sample_data" / served.accepted_sample()).read_bytes())


def test_predict_by_url_returns_expected_mock_meta_info(served):
    """restapi_test.test_predict_by_url_returns_expected_mock_meta_info."""
    r = served.get("predict", fileurl=f"{served.file_base}/{served.accepted_sample()}")
    assert r.status_code == 200
    assert_expected_meta_info(served, r.json())


def test_predict_by_url_returns_error_on_unsupported_file_type(served):
    """restapi_test.test_predict_by_url_returns_error_on_unsupported_file_type."""
    r = served.get("predict", fileurl=f"{served.file_base}/{unaccepted_image(served)[0]}")
    assert r.status_code == 400
    assert "Incorrect file type." in r.json()["error"]


def test_working_folder_empty_after_predict_by_url(served):
    """restapi_test.test_working_folder_empty_after_predict_by_url."""
    before = _listing(served.tmp)
    assert served.get("predict", fileurl=f"{served.file_base}/{served.accepted_sample()}").status_code == 200
    assert _listing(served.tmp) == before


def test_predict_sample_returns_expected_mock_prediction(served):
    """restapi_test.test_predict_sample_returns_expected_mock_prediction."""
    name = served.accepted_sample()
    r = served.get("predict_sample", filename=name)
    assert r.status_code == 200
    assert_expected_prediction(served, r.json(), (served.root / "sample_data" / name).read_bytes())


def test_predict_sample_on_invalid_file_returns_error(served):
    """restapi_test.test_predict_sample_on_invalid_file_returns_error, with the engine's text."""
    r = served.get("predict_sample", filename="NON_EXISTENT.png")
    assert r.status_code == 400
    assert r.json()["error"].startswith("The given sample file does not exist.")


# --- modelhub-engine pythonapi_test.py, through the REST API ---------------------------------------------
def test_get_config_returns_no_error(served):
    """pythonapi_test.test_get_config_returns_no_error."""
    assert "error" not in served.get("get_config").json()


def test_predict_returns_correct_output_format(served):
    """pythonapi_test.test_predict_returns_correct_output_format (the label list; the mock's mask output has
    no counterpart in a classifier)."""
    body = served.get("predict_sample", filename=served.accepted_sample()).json()
    assert isinstance(body["output"], list)
    assert isinstance(body["output"][0]["prediction"], list)
    assert all(isinstance(row, dict) for row in body["output"][0]["prediction"])


def test_predict_output_types_match_config(served):
    """pythonapi_test.test_predict_output_types_match_config."""
    model_io = served.get("get_model_io").json()
    body = served.get("predict_sample", filename=served.accepted_sample()).json()
    assert [o["type"] for o in body["output"]] == [o["type"] for o in model_io["output"]]


# --- modelhub utilities/test_integration.py ---------------------------------------------------------------
def test_check_if_config_complies_with_schema(served):
    """test_integration.check_if_config_complies_with_schema.

    The one check that cannot pass as written, for any server: ModelHub's call, jsonschema.validate(config,
    schema), first checks the schema against draft-04's metaschema, and ModelHub's schema breaks it (an empty
    `required` list under `modelhub`), so it raises SchemaError before looking at the config. The validation
    itself, run with the schema's validator class, passes.
    """
    schema = json.loads(SCHEMA.read_text())
    config = served.api_json("get_config")
    assert "error" not in config
    with pytest.raises(jsonschema.SchemaError) as e:
        jsonschema.validate(config, schema)
    assert list(e.value.path) == ["properties", "modelhub", "required"] and e.value.instance == []
    jsonschema.validators.validator_for(schema)(schema).validate(config)


def test_check_if_local_and_api_config_model_names_match(served):
    """test_integration.check_if_local_and_api_config_model_names_match."""
    assert served.api_json("get_config")["meta"]["name"] == served.card["meta"]["name"]


def test_check_if_legal_docs_available(served):
    """test_integration.check_if_legal_docs_available (passes without a warning: both licences present)."""
    legal = served.api_json("get_legal")
    assert "error" not in legal
    assert legal.get("model_license") and legal.get("sample_data_license")


def test_check_if_sample_data_available(served):
    """test_integration.check_if_sample_data_available (no warning: samples exist)."""
    samples = served.api_json("get_samples")
    assert "error" not in samples and len(samples) > 0


def test_check_if_prediction_returns_expected_data_format(served):
    """test_integration.check_if_prediction_returns_expected_data_format: the first sample, its outputs
    against the config's, every label_list element with a label and a probability."""
    samples = served.api_json("get_samples")
    result = served.api_json("predict_sample?filename=" + samples[0].rsplit("/", 1)[-1])
    assert "error" not in result
    types = [o["type"] for o in served.api_json("get_model_io")["output"]]
    assert len(result["output"]) == len(types)
    for output, want in zip(result["output"], types):
        assert output["type"] == want == "label_list"
        assert all("probability" in e and "label" in e for e in output["prediction"])


# --- ImageNet NIN end to end ----------------------------------------------------------------------------
@pytest.mark.parametrize("served", ["modelhub-nin"], indirect=True)
def test_every_modelhub_sample_photo_answers_top5_from_labels_json(served):
    """`nin import mxnet nin-symbol.json nin-0000.params --preprocess modelhub` then `nin serve ...
    --modelhub-contrib contrib_src`: each of the 16 photos answers 200 with modelhub.top (5) entries named
    from labels.json, sorted as modelhub.sort (true) says, and equal to the model's own top 5."""
    names = served.sample_names()
    assert len(names) == 16
    labels = set(served.labels)
    for name in names:
        r = served.get("predict_sample", filename=name)
        assert r.status_code == 200, name
        rows = _rows(r.json())
        assert len(rows) == served.card["modelhub"]["top"] == 5 and {label for label, _ in rows} <= labels
        probs = [p for _, p in rows]
        assert probs == sorted(probs, reverse=True) and served.card["modelhub"]["sort"] is True
        assert_expected_prediction(served, r.json(), (served.root / "sample_data" / name).read_bytes())
