"""`nin data fetch`: real downloads from a local HTTP server (Range resume, md5, atomic rename, offline)."""

import dataclasses
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from _official_files import md5, trust, write_idx_set
from nin.cli import main
from nin.data import load_dataset, sources
from nin.data.fetch import download, fetch_dataset
from nin.errors import DataError


class _Files(BaseHTTPRequestHandler):
    """Serves ``server.files`` with Range support; ``server.cut[path] = n`` drops the next response after n bytes."""

    def do_GET(self):
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.ranges:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = srv.cut.pop(self.path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection breaks mid-transfer
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    srv.files, srv.cut, srv.log, srv.ranges = {}, {}, [], True
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused at once
    return port


PAYLOAD = bytes(range(256)) * 4000  # 1 MB


def test_download_verifies_and_renames_atomically(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    dest = download([server.url + "/a.bin"], tmp_path / "d" / "a.bin", md5(PAYLOAD), len(PAYLOAD), progress=True)
    assert dest.read_bytes() == PAYLOAD and sorted(p.name for p in dest.parent.iterdir()) == ["a.bin"]


def test_download_resumes_a_partial_file_with_range(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD[:300_000])
    download([server.url + "/a.bin"], tmp_path / "a.bin", md5(PAYLOAD), len(PAYLOAD))
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert server.log == [("/a.bin", "bytes=300000-")]


def test_download_survives_a_broken_connection(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.cut["/a.bin"] = 123_456
    download([server.url + "/a.bin"], tmp_path / "a.bin", md5(PAYLOAD), len(PAYLOAD))
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert [r for _, r in server.log] == [None, "bytes=123456-"]


def test_download_restarts_when_the_server_ignores_range(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.ranges = False
    (tmp_path / "a.bin.part").write_bytes(b"x" * 5000)
    download([server.url + "/a.bin"], tmp_path / "a.bin", md5(PAYLOAD), len(PAYLOAD))
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_wrong_md5_leaves_nothing_behind(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    with pytest.raises(DataError, match=r"md5 [0-9a-f]{32}, expected 0{32} \(the download was deleted\)"):
        download([server.url + "/a.bin"], tmp_path / "a.bin", "0" * 32, len(PAYLOAD))
    assert list(tmp_path.iterdir()) == []


def test_falls_back_to_the_next_url(server, tmp_path):
    server.files["/mirror2/a.bin"] = PAYLOAD
    urls = [server.url + "/missing/a.bin", server.url + "/mirror2/a.bin"]
    download(urls, tmp_path / "a.bin", md5(PAYLOAD), len(PAYLOAD))
    assert [p for p, _ in server.log] == ["/missing/a.bin", "/mirror2/a.bin"]


def test_unreachable_host_fails_fast(tmp_path, closed_port):
    t0 = time.perf_counter()
    with pytest.raises(DataError, match=r"cannot reach a.bin: .*cannot connect"):
        download([f"http://127.0.0.1:{closed_port}/a.bin"], tmp_path / "a.bin", md5(PAYLOAD), len(PAYLOAD))
    assert time.perf_counter() - t0 < 5
    assert list(tmp_path.iterdir()) == []


def _mnist_source(monkeypatch, tmp_path, base_url):
    """The MNIST source with the test's files as the official ones, served from ``base_url``."""
    files = write_idx_set(tmp_path / "served")
    trust(monkeypatch, "mnist", {k: v for k, v in files.items() if "ubyte" in k})
    src = sources.SOURCES["mnist"]
    specs = tuple(dataclasses.replace(f, urls=(f"{base_url}/mnist/{f.name}",)) for f in src.files)
    monkeypatch.setitem(sources.SOURCES, "mnist", dataclasses.replace(src, files=specs))
    return {f"/mnist/{k}": v.read_bytes() for k, v in files.items() if "ubyte" in k}


def test_fetch_dataset_then_load_then_nothing_to_do(server, tmp_path, monkeypatch):
    server.files.update(_mnist_source(monkeypatch, tmp_path, server.url))
    root = tmp_path / "root"
    paths = fetch_dataset("mnist", root)
    assert sorted(p.name for p in paths) == sorted(f.name for f in sources.SOURCES["mnist"].files)
    assert all(p.parent == root / "mnist" for p in paths)
    assert len(load_dataset("mnist", "train", str(root))) == 24
    n = len(server.log)
    fetch_dataset("mnist", root)  # already there and verified: no request
    assert len(server.log) == n


def test_fetch_checks_each_file_present_once(server, tmp_path, monkeypatch):
    """Files that are already there are hashed once (by the inventory), not again before the download."""
    import nin.data.fetch
    import nin.data.inventory

    server.files.update(_mnist_source(monkeypatch, tmp_path, server.url))
    root = tmp_path / "root"
    fetch_dataset("mnist", root)
    (root / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()  # one file to fetch again, three present
    checked = []
    real = nin.data.inventory.check_file
    monkeypatch.setattr(nin.data.inventory, "check_file", lambda p, *a: checked.append(p.name) or real(p, *a))
    monkeypatch.setattr(nin.data.fetch, "check_file", nin.data.inventory.check_file)
    fetch_dataset("mnist", root)
    assert sorted(checked) == sorted(
        f.name for f in sources.SOURCES["mnist"].files if f.name != "t10k-labels-idx1-ubyte.gz"
    )
    assert [p for p, _ in server.log].count("/mnist/t10k-labels-idx1-ubyte.gz") == 2


def test_fetch_with_a_mirror_from_the_cli(server, tmp_path, monkeypatch, closed_port, capsys):
    served = _mnist_source(monkeypatch, tmp_path, f"http://127.0.0.1:{closed_port}")  # the "official" host is down
    server.files.update({k.replace("/mnist/", "/m/"): v for k, v in served.items()})
    root = tmp_path / "root"
    assert main(["data", "fetch", "mnist", "--root", str(root), "--mirror", server.url + "/m", "--no-progress"]) == 0
    assert "mnist: ready" in capsys.readouterr().out
    assert main(["data", "info", "mnist", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "ready: splits train, test" in out and out.count("md5 ok") == 4


def test_fetch_offline_names_every_file_to_place_by_hand(tmp_path, monkeypatch, closed_port, capsys):
    _mnist_source(monkeypatch, tmp_path, f"http://127.0.0.1:{closed_port}")
    root = tmp_path / "root"
    t0 = time.perf_counter()
    assert main(["data", "fetch", "mnist", "--root", str(root), "--no-progress"]) == 2
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "cannot reach train-images-idx3-ubyte.gz" in err and "offline, download by hand" in err
    for f in sources.SOURCES["mnist"].files:
        assert f.urls[0] in err and f.md5 in err
    assert f"put the file(s) unchanged in {root / 'mnist'}/" in err and "nin data info mnist" in err
    assert not (root / "mnist").exists() or not any((root / "mnist").iterdir())


def test_fetch_keeps_a_broken_partial_download_for_resume(server, tmp_path, monkeypatch):
    monkeypatch.setattr("nin.data.fetch.ATTEMPTS", 1)
    server.files["/a.bin"] = PAYLOAD
    server.cut["/a.bin"] = 1000
    with pytest.raises(DataError, match=r"partial file .*a.bin.part is kept"):
        download([server.url + "/a.bin"], tmp_path / "a.bin", md5(PAYLOAD), len(PAYLOAD), attempts=1)
    assert (tmp_path / "a.bin.part").stat().st_size == 1000 and not (tmp_path / "a.bin").exists()
    download([server.url + "/a.bin"], tmp_path / "a.bin", md5(PAYLOAD), len(PAYLOAD))
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_data_info_on_a_machine_without_cifar10(tmp_path, capsys):
    assert main(["data", "info", "cifar10", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    for part in (
        "NOT FOUND",
        f"nin data fetch cifar10 --root {tmp_path}",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        f"{tmp_path / 'cifar10'}/",
        "nin data info cifar10",
    ):
        assert part in out, part


def test_data_info_reports_a_damaged_file(tmp_path, capsys):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b" + bytes(100))
    assert main(["data", "info", "mnist", "--root", str(tmp_path), "--json"]) == 1
    import json

    state = json.loads(capsys.readouterr().out)
    bad = [f for f in state["files"] if f["status"] == "bad"]
    assert len(bad) == 1 and "truncated or not the official file: 102 bytes" in bad[0]["detail"]
    assert state["splits"] == {"train": False, "test": False, "train50k": False, "valid": False}
    assert main(["data", "list"]) == 0
