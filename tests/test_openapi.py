"""The OpenAPI document tells the whole truth: schemathesis (`--checks all`) against real `nin serve` processes.

The run reproduces how the document is judged from outside: schemathesis's CLI against `/openapi.json` of a
`nin serve` on 127.0.0.1, once per error mode. Before the document was completed (request body, every error
status per mode, binary content types, bounds), the same run found 10 failures with `--errors modelhub` and 8
with `--errors http`; now it must find none. Two things schemathesis cannot know are told to it:
the repository's schemathesis.toml loads `fixtures/serve/openapi_hooks.py`, which makes an upload declared as an
image type a real image (no schema can say "decodes as a PNG"), and says that GET /api/predict, off unless
`--allow-fileurl`, refuses every request (400 or 403). The CLI runs from the repository root, as a user would.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.serve.builders import save_ckpt
from fixtures.serve.contribs import running_server
from nin.serve.app import create_app
from nin.serve.contract import ROUTE_ERRORS, route_errors
from nin.serve.settings import ServeSettings

TESTS = Path(__file__).parent
ROOT = TESTS.parent  # schemathesis.toml: the hooks and the one operation told apart (see the file)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_ckpt(tmp_path_factory.mktemp("openapi") / "m.pt", dataset="mnist_embedded")


def _schemathesis() -> str:
    exe = Path(sys.executable).with_name("schemathesis")
    return str(exe) if exe.exists() else shutil.which("schemathesis") or "schemathesis"


@pytest.mark.parametrize("errors", ["modelhub", "http"])
def test_schemathesis_finds_nothing(ckpt, tmp_path, errors):
    env = {k: v for k, v in os.environ.items() if k != "SCHEMATHESIS_HOOKS"}
    config = tmp_path / "schemathesis.toml"  # the repository's, without the crash cache it keeps in the tree
    config.write_text((ROOT / "schemathesis.toml").read_text().replace("\n[[", "\n[cache]\nenabled = false\n\n[[", 1))
    with running_server(ckpt, "--errors", errors, workdir=tmp_path, timeout=90) as base:
        cmd = [_schemathesis(), "--config-file", str(config), "run", f"{base}/openapi.json", "--checks", "all"]
        cmd += ["--max-examples", "25", "--seed", "1", "--no-color", "--workers", "1"]
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failure" not in run.stdout.split("SUMMARY")[-1]


def _doc(errors: str) -> dict:
    return create_app(ServeSettings(errors=errors)).openapi()


@pytest.mark.parametrize("errors", ["modelhub", "http"])
def test_every_route_documents_its_statuses_and_error_body(errors):
    doc = _doc(errors)
    for (method, path), _ in ROUTE_ERRORS.items():
        responses = doc["paths"][path][method]["responses"]
        want = {"200", *(str(s) for s in route_errors(method, path, errors))}
        assert set(responses) == want, (method, path)
        for status in want - {"200"}:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_the_two_modes_document_different_statuses():
    modelhub, http = _doc("modelhub"), _doc("http")
    post_mh = set(modelhub["paths"]["/api/predict"]["post"]["responses"])
    post_http = set(http["paths"]["/api/predict"]["post"]["responses"])
    assert post_mh == {"200", "400", "408", "413", "503"}
    assert post_http == {"200", "400", "408", "413", "415", "422", "500", "503"}
    assert set(http["paths"]["/api/predict_sample"]["get"]["responses"]) >= {"404", "422"}
    assert "404" not in modelhub["paths"]["/api/predict_sample"]["get"]["responses"]


def test_upload_body_and_binary_answers_are_described():
    doc = _doc("modelhub")
    body = doc["paths"]["/api/predict"]["post"]["requestBody"]
    assert body["required"] is True
    form = body["content"]["multipart/form-data"]
    assert form["schema"]["required"] == ["file"] and form["schema"]["properties"]["file"]["format"] == "binary"
    assert {"image/png", "image/jpeg"} <= set(body["content"])
    paths = doc["paths"]
    assert list(paths["/api/get_model_files"]["get"]["responses"]["200"]["content"]) == ["application/zip"]
    assert "image/png" in paths["/api/samples/{name}"]["get"]["responses"]["200"]["content"]
    assert set(paths["/api/thumbnail/{name}"]["get"]["responses"]["200"]["content"]) == {"image/jpeg", "image/png"}
    prediction = paths["/api/predict_sample"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert prediction["required"] == ["output", "timestamp", "processing_time", "model"]
    top = next(p for p in paths["/api/predict"]["post"]["parameters"] if p["name"] == "top")
    assert top["schema"]["type"] == "integer" and top["schema"]["minimum"] == 1
    json.dumps(doc)  # serialisable as served


def test_docs_contract_table_is_rendered_from_the_document():
    from nin.serve.openapi import contract_table

    text = (TESTS.parent / "docs" / "serving.md").read_text()
    start, end = "<!-- contract:start -->\n", "<!-- contract:end -->"
    in_docs = text[text.index(start) + len(start) : text.index(end)]
    assert in_docs == contract_table(_doc("modelhub"), _doc("http")), "re-render the table in docs/serving.md"
