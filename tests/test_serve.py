import asyncio
import io
import json
import re
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path

import httpx
import jsonschema
import pytest
import torch
from PIL import Image

from fixtures.serve.builders import bomb_png, digit, png_bytes, save_ckpt
from fixtures.serve.contribs import running_server
from nin.errors import RequestError
from nin.serve.app import create_app
from nin.serve.batching import MicroBatcher
from nin.serve.predictor import Predictor
from nin.serve.process import free_port, wait_ready
from nin.serve.settings import ServeSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx vs httpx2
    from fastapi.testclient import TestClient

FIXTURES = Path(__file__).parent / "fixtures" / "serve"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-\d{6}$")


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory):
    return save_ckpt(tmp_path_factory.mktemp("serve") / "model.pt", dataset="mnist_embedded")


@pytest.fixture(scope="module")
def predictor(ckpt_path):
    return Predictor.from_checkpoint(ckpt_path, device="cpu")


@pytest.fixture(scope="module")
def client(ckpt_path, predictor):
    app = create_app(ServeSettings(checkpoint=str(ckpt_path)), predictor=predictor)
    with TestClient(app) as c:
        yield c


def app_client(predictor, **settings):
    return TestClient(create_app(ServeSettings(**settings), predictor=predictor))


def upload(client, data, name="d.png", ctype="image/png", query=""):
    return client.post(f"/api/predict{query}", files={"file": (name, data, ctype)})


# --- ModelHub routes ------------------------------------------------------------------------------
def test_config_validates_against_modelhubs_schema(client):
    config = client.get("/api/get_config").json()
    schema = json.loads((FIXTURES / "modelhub_config_schema.json").read_text())
    jsonschema.Draft4Validator(schema).validate(config)
    assert config["meta"]["name"] == "nin-mnist"
    assert config["modelhub"]["top"] == 5 and config["modelhub"]["sort"] is True
    assert config["modelhub"]["nin"]["classes"] == [str(i) for i in range(10)]
    assert config["model"]["io"]["input"]["single"]["format"] == config["model"]["io"]["input"]["format"]


def test_config_has_modelhubs_nin_fields(client):
    ours = client.get("/api/get_config").json()
    theirs = json.loads((FIXTURES / "modelhub_nin" / "contrib_src" / "model" / "config.json").read_text())
    assert set(ours) == set(theirs)
    for section in ("meta", "model"):
        assert set(theirs[section]) <= set(ours[section]), section
    assert set(theirs["publication"]) - {"email"} <= set(ours["publication"])
    assert ours["publication"]["title"] == theirs["publication"]["title"]
    assert ours["model"]["io"]["output"][0]["type"] == "label_list"
    assert ours["model"]["io"]["output"][0]["name"] == theirs["model"]["io"]["output"][0]["name"]


def test_model_io_legal_and_files(client):
    config = client.get("/api/get_config").json()
    assert client.get("/api/get_model_io").json() == config["model"]["io"]
    legal = client.get("/api/get_legal").json()
    assert set(legal) == {"modelhub_license", "modelhub_acknowledgements", "model_license", "sample_data_license"}
    assert all(isinstance(v, str) and v.strip() for v in legal.values())
    assert "MNIST" in legal["sample_data_license"]
    r = client.get("/api/get_model_files")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(r.content))
    # ModelHub's layout: the model folder only (the licences are get_legal's), the weights inside it.
    names = ["model/", "model/config.json", "model/labels.json", "model/model.pt", "model/thumbnail.jpg"]
    assert sorted(z.namelist()) == names
    assert json.loads(z.read("model/config.json")) == config
    assert json.loads(z.read("model/labels.json")) == {str(i): str(i) for i in range(10)}
    assert z.read("model/thumbnail.jpg") == client.get("/api/thumbnail/thumbnail.jpg").content


def test_samples_thumbnails_and_predict_sample(client, predictor):
    urls = client.get("/api/get_samples").json()
    names = [u.rsplit("/", 1)[1] for u in urls]
    assert names == [f"digit-{d}.png" for d in range(10)]
    assert all(u.startswith("http://testserver/api/samples/") for u in urls)
    img = Image.open(io.BytesIO(client.get("/api/samples/digit-7.png").content))
    assert img.size == (28, 28)
    thumb = client.get("/api/thumbnail/digit-7.png")
    assert thumb.headers["content-type"] == "image/png" and Image.open(io.BytesIO(thumb.content)).width >= 64
    model_thumb = client.get("/api/thumbnail/thumbnail.jpg")
    assert model_thumb.headers["content-type"] == "image/jpeg"
    body = client.get("/api/predict_sample", params={"filename": "digit-7.png"}).json()
    want = predictor.probabilities(img)[0]
    got = torch.tensor([row["probability"] for row in body["output"][0]["prediction"]])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_predict_upload_is_modelhub_shaped_and_matches_python(client, predictor):
    d = digit(11)
    r = upload(client, png_bytes(d))
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"output", "timestamp", "processing_time", "model"}
    (out,) = body["output"]
    assert set(out) == {"prediction", "shape", "type", "name", "description"}
    assert out["type"] == "label_list" and out["name"] == "probabilities" and out["shape"] == [10]
    assert [row["label"] for row in out["prediction"]] == predictor.classes  # class order, like ModelHub
    assert TIMESTAMP.match(body["timestamp"])
    assert isinstance(body["processing_time"], float) and body["processing_time"] >= 0
    config = client.get("/api/get_config").json()
    assert body["model"] == {"id": config["id"], "name": config["meta"]["name"]}
    got = torch.tensor([row["probability"] for row in out["prediction"]])
    torch.testing.assert_close(got, predictor.probabilities(d)[0], atol=1e-5, rtol=1e-4)


def test_top_sort_and_class_map_extras(client, predictor):
    d = png_bytes(digit(2))
    rows = upload(client, d, query="?top=3").json()["output"][0]
    assert len(rows["prediction"]) == 3 and rows["shape"] == [3]
    probs = [row["probability"] for row in rows["prediction"]]
    assert probs == sorted(probs, reverse=True)
    assert [row["label"] for row in rows["prediction"]] == predictor.predict(digit(2), top_k=3).labels
    everything = upload(client, d, query="?sort=true").json()["output"][0]["prediction"]
    assert len(everything) == 10 and everything[0]["label"] == rows["prediction"][0]["label"]
    in_class_order = upload(client, d, query="?top=3&sort=false").json()["output"][0]["prediction"]
    assert [row["label"] for row in in_class_order] == sorted(row["label"] for row in rows["prediction"])
    body = upload(client, d, query="?top=5&sort=true&class_map=true").json()
    cm = body["class_map"]
    assert cm["label"] == body["output"][0]["prediction"][0]["label"] and cm["map_size"] == [7, 7]
    assert cm["image"].startswith("data:image/png;base64,")
    overlay = Image.open(io.BytesIO(__import__("base64").b64decode(cm["image"].split(",", 1)[1])))
    assert overlay.size == (252, 252) and overlay.mode == "RGB"  # 28 px x 9, sharp pixels


def test_serving_imports_neither_matplotlib_nor_onnxruntime():
    # matplotlib is the optional 'viz' extra and the overlay borrows nin.viz.cam; onnxruntime loads with a model.
    code = (
        "import sys, nin.serve.app, nin.serve.overlay, nin.serve.backends, nin.export.runtime; "
        "loaded = [m for m in ('matplotlib', 'onnxruntime') if m in sys.modules]; assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- errors ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def http_client(ckpt_path, predictor):
    """The same service with a distinct status per error (`nin serve --errors http`)."""
    with app_client(predictor, checkpoint=str(ckpt_path), errors="http") as c:
        yield c


BAD_PARAMETERS = [("?top=0", "top"), ("?top=11", "between 1 and 10"), ("?top=two", "top"), ("?sort=maybe", "sort")]


@pytest.mark.parametrize("query,message", BAD_PARAMETERS)
def test_bad_parameters_are_modelhubs_400_by_default(client, query, message):
    r = upload(client, png_bytes(digit(0)), query=query)
    assert r.status_code == 400 and message in r.json()["error"]


@pytest.mark.parametrize("query,message", BAD_PARAMETERS)
def test_bad_parameters_are_422_with_errors_http(http_client, query, message):
    r = upload(http_client, png_bytes(digit(0)), query=query)
    assert r.status_code == 422 and message in r.json()["error"]


def _bad_requests(c):
    """(what, response) for every malformed request; the two tests below expect their own statuses."""
    truncated = png_bytes(torch.randint(0, 255, (64, 64), dtype=torch.uint8).numpy())[:300]
    yield "text", upload(c, b"hello", "notes.txt", "text/plain")
    yield "pdf", upload(c, png_bytes(Image.new("RGB", (8, 8)), "PDF"), "doc.pdf", "application/pdf")
    yield "json", c.post("/api/predict", json={"file": "x"})
    yield "broken", upload(c, b"\x89PNG\r\n\x1a\n garbage", "broken.png", "image/png")
    yield "truncated", upload(c, truncated, "cut.png", "application/octet-stream")
    yield "no_field", c.post("/api/predict", files={"image": ("d.png", png_bytes(digit(0)), "image/png")})
    yield "empty", upload(c, b"", "empty.png")
    yield "unknown_sample", c.get("/api/predict_sample", params={"filename": "../../etc/passwd"})
    yield "no_filename", c.get("/api/predict_sample")
    yield "no_fileurl", c.get("/api/predict")
    yield "sample_file", c.get("/api/samples/nope.png")
    yield "thumbnail", c.get("/api/thumbnail/nope.png")
    yield "route", c.get("/api/nowhere")
    yield "method", c.delete("/api/predict")


HTTP_STATUSES = {"text": 415, "pdf": 415, "json": 415, "broken": 400, "truncated": 400, "no_field": 400}
HTTP_STATUSES |= {"empty": 400, "unknown_sample": 404, "no_filename": 422, "no_fileurl": 422}
HTTP_STATUSES |= {"sample_file": 404, "thumbnail": 404, "route": 404, "method": 405}


def _check_texts(got):
    assert got["text"].json()["error"].startswith("Incorrect file type.")
    assert "could not be decoded" in got["broken"].json()["error"]
    assert "cut.png could not be decoded" in got["truncated"].json()["error"]
    assert "field `file`" in got["no_field"].json()["error"]
    assert got["unknown_sample"].json()["error"].startswith("The given sample file does not exist.")
    assert got["route"].json() == {"error": "Not Found"}
    assert all(set(r.json()) == {"error"} for r in got.values())


def test_error_statuses_with_errors_http(http_client):
    got = dict(_bad_requests(http_client))
    assert {k: r.status_code for k, r in got.items()} == HTTP_STATUSES
    _check_texts(got)


def test_error_statuses_are_modelhubs_by_default(client):
    """ModelHub's engine answers every error of its JSON routes 400 (`_jsonify`); its sample and thumbnail
    routes and unknown paths answer 404, a wrong method 405 (Flask's own), as here."""
    got = dict(_bad_requests(client))
    kept = {"sample_file": 404, "thumbnail": 404, "route": 404, "method": 405}
    assert {k: r.status_code for k, r in got.items()} == {k: kept.get(k, 400) for k in HTTP_STATUSES}
    _check_texts(got)


def test_upload_cap_is_413(predictor):
    with app_client(predictor, max_upload_bytes=4000) as c:
        noisy = torch.randint(0, 255, (64, 64), dtype=torch.uint8).numpy()
        big = png_bytes(noisy)
        assert len(big) > 4000
        r = upload(c, big)
        assert r.status_code == 413 and "4,000 bytes" in r.json()["error"]
        # A body without Content-Length (chunked) is cut off while it streams in.
        r = c.post("/api/predict", content=iter([b"x" * 50_000] * 10), headers={"content-type": "image/png"})
        assert r.status_code == 413
        r = c.post("/api/predict", content=b"", headers={"content-type": "image/png", "content-length": str(10**9)})
        assert r.status_code == 413
        assert upload(c, png_bytes(digit(0))).status_code == 200  # small files still pass


def test_image_dimension_caps_are_413(client, predictor):
    r = upload(client, bomb_png(60_000, 60_000), "bomb.png")
    assert r.status_code == 413
    with app_client(predictor, max_side=100) as c:
        r = upload(c, png_bytes(Image.new("L", (101, 20))))
        assert r.status_code == 413 and "100 px a side" in r.json()["error"]


@pytest.mark.parametrize("errors,status", [("modelhub", 400), ("http", 500)])
def test_internal_errors_give_no_details(predictor, errors, status):
    """ModelHub answers a model that raises with 400 (restapivoid_test's ModelThrowingError); ours says 500
    with --errors http. Neither leaks the exception."""
    app = create_app(ServeSettings(errors=errors), predictor=predictor)
    with TestClient(app, raise_server_exceptions=False) as c:

        def broken(pixels, maps):
            raise RuntimeError("secret internal detail")

        app.state.nin.batcher.run = broken
        r = upload(c, png_bytes(digit(0)))
        assert r.status_code == status
        assert "secret" not in r.text and "error" in r.json()


def test_not_ready_is_503_and_failed_load_is_reported(tmp_path):
    app = create_app(ServeSettings(checkpoint=str(tmp_path / "missing.pt")))
    with TestClient(app) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        for _ in range(100):
            r = c.get("/readyz")
            if "failed" in r.json().get("error", ""):
                break
            time.sleep(0.05)
        assert r.status_code == 503 and "does not exist" in r.json()["error"]
        r = c.get("/api/get_config")
        assert r.status_code == 503 and "failed to load" in r.json()["error"]


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and "nin_mnist" in ready["model"]


def test_page_and_assets_are_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    sources = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    local = [s for s in sources if not s.startswith(("http", "//"))]
    assert "static/app.js" in local and "static/style.css" in local
    assert all(s.startswith("https://arxiv.org") for s in sources if s not in local)  # only a plain link out
    for asset in ("static/app.js", "static/style.css"):
        got = client.get("/" + asset)
        assert got.status_code == 200 and "http://" not in got.text and "https://" not in got.text


# --- micro-batching --------------------------------------------------------------------------------
def test_micro_batcher_batches_concurrent_requests_and_routes_results():
    sizes = []
    gate = threading.Event()

    def run(pixels, maps):
        gate.wait(5)
        sizes.append(pixels.shape[0])
        logits = pixels.float().mean(dim=(1, 2, 3))[:, None].repeat(1, 3)  # each row tells its input apart
        return logits, None

    async def scenario():
        b = MicroBatcher(run, max_batch=4, max_queue=64)
        await b.start()
        first = asyncio.create_task(b.submit(torch.full((1, 2, 2), 1, dtype=torch.uint8)))
        await asyncio.sleep(0.05)  # the first batch is now blocked in `run`; the rest queue up
        rest = [asyncio.create_task(b.submit(torch.full((1, 2, 2), v, dtype=torch.uint8))) for v in range(2, 11)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(first, *rest)
        await b.stop()
        return results, b

    results, b = asyncio.run(scenario())
    assert [float(r[0][0]) for r in results] == [float(v) for v in range(1, 11)]
    assert sizes[0] == 1 and max(sizes) == 4 and sum(sizes) == 10
    assert b.batches == len(sizes) < 10 and b.images == 10


def test_micro_batcher_sheds_load_when_full():
    gate = threading.Event()

    def run(pixels, maps):
        gate.wait(5)
        return torch.zeros(pixels.shape[0], 2), None

    async def scenario():
        b = MicroBatcher(run, max_batch=1, max_queue=2)
        await b.start()
        x = torch.zeros((1, 2, 2), dtype=torch.uint8)
        running = asyncio.create_task(b.submit(x))
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(b.submit(x)) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(RequestError) as e:
            await b.submit(x)
        gate.set()
        await asyncio.gather(running, *queued)
        await b.stop()
        return e.value.status

    assert asyncio.run(scenario()) == 503


# --- a real server -----------------------------------------------------------------------------------
def test_nin_serve_answers_curl_style_upload_over_real_uvicorn(ckpt_path, predictor, tmp_path):
    with running_server(ckpt_path, workdir=tmp_path, timeout=90) as base:
        d = digit(21)
        r = httpx.post(f"{base}/api/predict", files={"file": ("digit.png", png_bytes(d), "image/png")}, timeout=30)
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"output", "timestamp", "processing_time", "model"}
        got = torch.tensor([row["probability"] for row in body["output"][0]["prediction"]])
        torch.testing.assert_close(got, predictor.probabilities(d)[0], atol=1e-5, rtol=1e-4)
        with httpx.Client(base_url=base, timeout=30) as c:  # concurrent clients all get answers
            results = []
            threads = [
                threading.Thread(target=lambda: results.append(c.get("/api/predict_sample?filename=digit-3.png")))
                for _ in range(8)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert [r.status_code for r in results] == [200] * 8
        assert "nin-mnist" in httpx.get(f"{base}/api/get_config").text
        r = httpx.get(f"{base}/api/predict_sample", params={"filename": "nope.png"})
        assert r.status_code == 400 and r.json()["error"].startswith("The given sample file does not exist.")


def test_serve_cli_rejects_a_bad_checkpoint_in_one_line(tmp_path, capsys):
    from nin.cli import main

    assert main(["serve", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1


def test_wait_ready_reports_a_server_that_exits_or_never_answers():
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(RuntimeError, match="exited with code 3"):
        wait_ready(f"http://127.0.0.1:{free_port()}", proc, timeout=5)
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(RuntimeError, match="not ready after 1 s"):
            wait_ready(f"http://127.0.0.1:{free_port()}", idle, timeout=1)
    finally:
        idle.kill()
        idle.wait()
