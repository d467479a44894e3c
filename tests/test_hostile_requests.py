"""Hostile requests to `nin serve`: every malformed input gets a 4xx with ModelHub's {"error": ...} body,
the server stays up, and its memory stays bounded."""

import io
import resource
import warnings
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fixtures.serve.builders import bomb_png, digit, png_bytes, save_ckpt
from nin.serve.app import create_app
from nin.serve.predictor import Predictor
from nin.serve.settings import ServeSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    ckpt = save_ckpt(tmp_path_factory.mktemp("hostile") / "m.pt", dataset="mnist_embedded")
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    app = create_app(ServeSettings(checkpoint=str(ckpt), max_upload_bytes=1_000_000), predictor=predictor)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _is_error(r, *statuses):
    assert r.status_code in statuses, (r.status_code, r.text[:200])
    assert set(r.json()) == {"error"} and r.json()["error"]


def _alive(client):
    ok = client.post("/api/predict", files={"file": ("d.png", png_bytes(digit(0)), "image/png")})
    assert ok.status_code == 200 and "output" in ok.json()


@FUZZ
@given(body=st.binary(max_size=4096), ctype=st.sampled_from(["image/png", "image/jpeg", "application/octet-stream"]))
def test_random_bytes_are_rejected_cleanly(client, body, ctype):
    r = client.post("/api/predict", files={"file": ("x.png", body, ctype)})
    if r.status_code == 200:  # random bytes that happen to decode as an image are fine
        assert "output" in r.json()
    else:
        _is_error(r, 400, 413, 415)


@FUZZ
@given(cut=st.floats(0.0, 0.95), fmt=st.sampled_from(["PNG", "JPEG"]))
def test_truncated_images(client, cut, fmt):
    data = png_bytes(Image.fromarray(digit(3)).resize((64, 64)), fmt)
    r = client.post("/api/predict", files={"file": (f"d.{fmt.lower()}", data[: int(len(data) * cut)], "image/png")})
    if r.status_code != 200:  # PIL may still decode a JPEG missing only its tail
        _is_error(r, 400, 415)
    _alive(client)


@FUZZ
@given(name=st.text(min_size=1, max_size=60))
def test_sample_and_thumbnail_names_cannot_escape(client, name):
    for route in ("samples", "thumbnail"):
        r = client.get(f"/api/{route}/{quote(name, safe='')}")
        if r.status_code == 200:  # only the listed samples are ever served
            listed = [u.rsplit("/", 1)[-1] for u in client.get("/api/get_samples").json()]
            assert name in listed
        else:
            assert r.status_code in (400, 404, 405, 422), r.status_code
    r = client.get("/api/predict_sample", params={"filename": name})
    assert r.status_code in (200, 400, 404, 422)


@pytest.mark.parametrize("name", ["../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd", "....//x", "%00"])
def test_path_traversal_names(client, name):
    for url in (f"/api/samples/{name}", f"/api/thumbnail/{name}", f"/api/predict_sample?filename={name}"):
        r = client.get(url)
        assert r.status_code in (400, 404, 422), (url, r.status_code)
        assert b"root:" not in r.content


@FUZZ
@given(top=st.text(max_size=12), sort=st.text(max_size=8))
def test_bad_query_values(client, top, sort):
    r = client.post(
        "/api/predict", params={"top": top, "sort": sort}, files={"file": ("d.png", png_bytes(digit(1)), "image/png")}
    )
    if r.status_code != 200:
        _is_error(r, 400)  # ModelHub's status for a bad parameter (422 with --errors http)


def test_wrong_content_types_and_missing_field(client):
    _is_error(client.post("/api/predict", files={"file": ("a.txt", b"hello", "text/plain")}), 400, 415)
    _is_error(client.post("/api/predict", files={"other": ("d.png", png_bytes(digit(0)), "image/png")}), 400, 422)
    _is_error(client.post("/api/predict", content=b"raw", headers={"content-type": "application/json"}), 400, 415, 422)


def test_decompression_bomb_and_huge_dimensions(client):
    _is_error(client.post("/api/predict", files={"file": ("b.png", bomb_png(60000, 60000), "image/png")}), 400, 413)
    _alive(client)


def _vm_hwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_hundred_megabyte_body_is_413_and_the_server_never_holds_it(tmp_path):
    """Through a real uvicorn: a 100 MB upload is refused while streaming; the server's peak RSS barely moves."""
    import subprocess
    import sys

    import httpx

    from nin.serve.process import free_port, wait_ready

    ckpt = save_ckpt(tmp_path / "m.pt", dataset="mnist_embedded")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nin", "serve", str(ckpt), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, timeout=60)
        ok = httpx.post(f"{base}/api/predict", files={"file": ("d.png", png_bytes(digit(0)), "image/png")})
        assert ok.status_code == 200
        before = _vm_hwm_mb(proc.pid)

        def chunks():  # a well-formed multipart upload whose file part is 100 MB
            yield (
                b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
                b"Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n"
            )
            block = b"\0" * (1 << 20)
            for _ in range(100):
                yield block
            yield b"\r\n--xyz--\r\n"

        try:
            r = httpx.post(
                f"{base}/api/predict",
                content=chunks(),
                timeout=60,
                headers={"content-type": "multipart/form-data; boundary=xyz"},
            )
            _is_error(r, 413)
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            pass  # the server answered 413 and closed the connection while we were still sending
        grown = _vm_hwm_mb(proc.pid) - before
        assert grown < 40, f"server peak memory grew by {grown:.0f} MB for a rejected 100 MB body"
        again = httpx.post(f"{base}/api/predict", files={"file": ("d.png", png_bytes(digit(0)), "image/png")})
        assert again.status_code == 200  # still up
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_memory_stays_bounded_over_many_bad_requests(client):
    bodies = [b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, png_bytes(digit(2))[:50], bomb_png(50000, 50000)]
    for _ in range(3):  # warm-up: allocator pools, lazy imports
        for b in bodies:
            client.post("/api/predict", files={"file": ("x.png", b, "image/png")})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(50):
        for b in bodies:
            r = client.post("/api/predict", files={"file": ("x.png", b, "image/png")})
            assert 400 <= r.status_code < 500
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 50, f"peak memory grew by {grown_mb:.0f} MB over 200 bad requests"
    _alive(client)


def test_huge_declared_dimensions_in_a_tiny_file(client):
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = (60000).to_bytes(4, "big") + (60000).to_bytes(4, "big")  # IHDR width/height (CRC now wrong)
    r = client.post("/api/predict", files={"file": ("h.png", bytes(data), "image/png")})
    _is_error(r, 400, 413)
