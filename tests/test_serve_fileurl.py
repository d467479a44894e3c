"""``/api/predict?fileurl=``: off by default; when on, public http(s) only, size and time capped."""

import contextlib
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fixtures.serve.builders import digit, png_bytes, save_ckpt
from nin.errors import ConfigError, RequestError
from nin.serve.app import create_app
from nin.serve.fetch import HostAllowlist, _check_address, resolve_public
from nin.serve.predictor import Predictor
from nin.serve.settings import ServeSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx vs httpx2
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return Predictor.from_checkpoint(save_ckpt(tmp_path_factory.mktemp("fileurl") / "m.pt"), device="cpu")


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(ServeSettings(), predictor=predictor)) as c:
        yield c


def app_client(predictor, **settings):
    return TestClient(create_app(ServeSettings(**settings), predictor=predictor))


class _Files(BaseHTTPRequestHandler):
    png = b""

    def do_GET(self):
        # The client gives up first in the timeout and size-cap cases: a broken pipe is expected there.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._route()

    def _route(self):
        if self.path == "/digit.png":
            self._send(200, self.png, "image/png")
        elif self.path == "/big.png":
            self._send(200, b"\x00" * 20_000, "image/png")
        elif self.path == "/stream.png":  # no Content-Length: the cap must hold while reading
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"\x00" * 1000)
        elif self.path == "/slow.png":
            time.sleep(2.0)
            self._send(200, self.png, "image/png")
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/digit.png")
            self.end_headers()
        elif self.path.startswith("/elsewhere?to="):  # a redirect to another host
            self.send_response(302)
            self.send_header("Location", self.path.split("=", 1)[1])
            self.end_headers()
        else:
            self._send(404, b"no", "text/plain")

    def _send(self, status, body, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def file_server():
    _Files.png = png_bytes(digit(4))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fileurl_is_off_by_default(client, predictor, file_server):
    r = client.get("/api/predict", params={"fileurl": f"{file_server}/digit.png"})
    assert r.status_code == 400 and "--allow-fileurl" in r.json()["error"]  # ModelHub's status for any error
    assert client.get("/api/predict").status_code == 400
    with app_client(predictor, errors="http") as c:
        assert c.get("/api/predict", params={"fileurl": f"{file_server}/digit.png"}).status_code == 403
        assert c.get("/api/predict").status_code == 422


def test_fileurl_refuses_private_hosts_and_other_schemes(predictor, file_server):
    with app_client(predictor, allow_fileurl=True, errors="http") as c:
        for url in (f"{file_server}/digit.png", "http://localhost/x.png", "http://[::1]/x.png", "http://10.0.0.8/x"):
            r = c.get("/api/predict", params={"fileurl": url})
            assert r.status_code == 403 and "refusing" in r.json()["error"], url
        for url in ("file:///etc/passwd", "ftp://example.com/x.png", "gopher://x", "http:///nohost"):
            assert c.get("/api/predict", params={"fileurl": url}).status_code == 422, url
        r = c.get("/api/predict", params={"fileurl": "http://user:pw@example.com/x.png"})
        assert r.status_code == 422


@pytest.mark.parametrize(
    "ip,allowed",
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("fc00::1", False),
        ("fe80::1%eth0", False),
        ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False),
    ],
)
def test_address_policy(ip, allowed):
    if allowed:
        _check_address(ip, allow_private=False)
    else:
        with pytest.raises(RequestError) as e:
            _check_address(ip, allow_private=False)
        assert e.value.status == 403
    _check_address(ip, allow_private=True)  # the escape hatch for trusted networks


def test_resolution_checks_every_address():
    with pytest.raises(RequestError) as e:
        resolve_public("localhost", 80)
    assert e.value.status == 403


def test_fileurl_fetch_caps(predictor, file_server):
    settings = dict(allow_fileurl=True, fileurl_allow_hosts=("127.0.0.1",), max_upload_bytes=10_000)
    settings |= dict(fileurl_timeout_s=0.8, errors="http")
    with app_client(predictor, **settings) as c:
        ok = c.get("/api/predict", params={"fileurl": f"{file_server}/digit.png", "top": 3})
        assert ok.status_code == 200
        assert [r["label"] for r in ok.json()["output"][0]["prediction"]] == predictor.predict(digit(4), 3).labels
        assert c.get("/api/predict", params={"fileurl": f"{file_server}/moved"}).status_code == 200
        assert c.get("/api/predict", params={"fileurl": f"{file_server}/big.png"}).status_code == 413
        assert c.get("/api/predict", params={"fileurl": f"{file_server}/stream.png"}).status_code == 413
        t0 = time.perf_counter()
        r = c.get("/api/predict", params={"fileurl": f"{file_server}/slow.png"})
        assert r.status_code == 504 and time.perf_counter() - t0 < 1.9
        assert c.get("/api/predict", params={"fileurl": f"{file_server}/nothing"}).status_code == 502


def test_allowlist_names_hosts_addresses_and_networks():
    allow = HostAllowlist(["Images.Intranet.", "127.0.0.1", "10.0.0.0/8", "[fd00::5]"])
    for host, ip in [("images.intranet", "10.9.9.9"), ("x", "127.0.0.1"), ("x", "10.200.1.2"), ("x", "fd00::5")]:
        _check_address(ip, allow_private=False, allowlist=allow, host=host)
    for host, ip in [("other", "127.0.0.2"), ("other", "192.168.1.1"), ("other", "::1"), ("other", "fd00::6")]:
        with pytest.raises(RequestError) as e:
            _check_address(ip, allow_private=False, allowlist=allow, host=host)
        assert e.value.status == 403 and "--fileurl-allow-hosts" in str(e.value)
    for bad in ("http://x", "a b", "host/path", ""):
        with pytest.raises(ConfigError, match="is not a host name, an address or a network"):
            HostAllowlist([bad])


def test_allowlist_is_checked_at_every_hop(predictor, file_server):
    """A listed host is fetched although loopback; a redirect to an unlisted private host is refused."""
    port = file_server.rsplit(":", 1)[1]
    with app_client(predictor, allow_fileurl=True, fileurl_allow_hosts=("127.0.0.1",)) as c:
        assert c.get("/api/predict", params={"fileurl": f"{file_server}/digit.png"}).status_code == 200
        assert c.get("/api/predict", params={"fileurl": f"{file_server}/moved"}).status_code == 200
        r = c.get("/api/predict", params={"fileurl": f"{file_server}/elsewhere?to=http://127.0.0.2:{port}/digit.png"})
        assert r.status_code == 400 and "refusing to fetch from 127.0.0.2" in r.json()["error"]
        r = c.get("/api/predict", params={"fileurl": f"http://127.0.0.2:{port}/digit.png"})
        assert r.status_code == 400 and "refusing" in r.json()["error"]
    with app_client(predictor, allow_fileurl=True, fileurl_allow_hosts=("intranet.example",), errors="http") as c:
        assert c.get("/api/predict", params={"fileurl": f"{file_server}/digit.png"}).status_code == 403


def test_allowlist_needs_allow_fileurl_and_valid_entries():
    with pytest.raises(ConfigError, match="add --allow-fileurl"):
        ServeSettings(fileurl_allow_hosts=("127.0.0.1",))
    with pytest.raises(ConfigError, match="'ftp://x' is not a host name"):
        ServeSettings(allow_fileurl=True, fileurl_allow_hosts=("ftp://x",))
    assert ServeSettings.from_json(ServeSettings(allow_fileurl=True, fileurl_allow_hosts=("a",)).to_json()) == (
        ServeSettings(allow_fileurl=True, fileurl_allow_hosts=("a",))
    )
