"""``hf-hub:`` names and ``nin.from_pretrained`` through huggingface_hub's own download code and cache.

A stand-in Hub (tests/_fake_hub.py) serves two revisions of an exported folder on 127.0.0.1. A first process
downloads them with ``HF_ENDPOINT`` pointing at it (huggingface_hub lays out its cache itself); the server is then
stopped, and a second process with ``HF_HUB_OFFLINE=1`` loads, predicts and evaluates from that cache alone.
Both halves run in subprocesses because huggingface_hub reads these variables when it is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _fake_hub import FakeHub
from fixtures.serve.builders import digit, make_ckpt, png_bytes
from nin.hub.folder import export_hub_folder
from nin.train.checkpoint import build_from_checkpoint

TESTS = Path(__file__).resolve().parent

# Runs in the subprocesses: loads each name, prints {name: logits or the error line}.
LOAD = """
import json, sys, torch
import nin
from nin.errors import NinError
x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
out = {}
for name in json.loads(sys.argv[1]):
    try:
        with torch.no_grad():
            out[name] = nin.from_pretrained(name)(x).tolist()
    except NinError as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""


def reference(ckpt: dict) -> torch.Tensor:
    x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return build_from_checkpoint(ckpt)(x)


def run_py(code: str, env: dict, *args: str) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=180, cwd=TESTS
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """Two revisions exported, downloaded once through the stand-in Hub; returns what the offline half needs."""
    root = tmp_path_factory.mktemp("hfhub")
    main_ckpt, v2_ckpt = make_ckpt(seed=0), make_ckpt(seed=1)
    export_hub_folder(main_ckpt, root / "main", repo_id="someone/tiny")
    export_hub_folder(v2_ckpt, root / "v2", repo_id="someone/tiny")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(root / "home"), HF_HUB_CACHE=str(root / "cache"), HF_HUB_DISABLE_TELEMETRY="1")
    env.update(HF_HUB_DISABLE_PROGRESS_BARS="1")
    names = ["hf-hub:someone/tiny", "hf-hub:someone/tiny@v2", "hf-hub:someone/missing", "hf-hub:someone/tiny@nope"]
    with FakeHub({"someone/tiny": {"main": root / "main", "v2": root / "v2"}}) as hub:
        online = run_py(LOAD, {**env, "HF_ENDPOINT": hub.url}, json.dumps(names))
        requests = list(hub.requests)
        commits = hub.commits["someone/tiny"]
    return {
        "root": root,
        "env": env,
        "online": online,
        "requests": requests,
        "commits": commits,
        "ckpts": {"main": main_ckpt, "v2": v2_ckpt},
        "dead": hub.url,  # the server is gone: nothing answers there now
    }


def test_online_the_files_come_from_the_hub_api_into_the_library_cache(hub_cache):
    h = hub_cache
    assert "HEAD /someone/tiny/resolve/main/model.safetensors" in h["requests"]
    assert "GET /someone/tiny/resolve/main/model.safetensors" in h["requests"]
    repo = h["root"] / "cache" / "models--someone--tiny"
    assert (repo / "refs" / "main").read_text() == h["commits"]["main"]
    assert (repo / "refs" / "v2").read_text() == h["commits"]["v2"]
    weights = h["root"] / "main" / "model.safetensors"
    blob = repo / "blobs" / hashlib.sha256(weights.read_bytes()).hexdigest()  # named by the LFS sha256
    assert blob.read_bytes() == weights.read_bytes()
    snap = repo / "snapshots" / h["commits"]["main"]
    assert {p.name for p in snap.iterdir()} == {"model.safetensors", "config.json", "labels.json"}
    for rev in ("main", "v2"):
        want = reference(h["ckpts"][rev])
        name = "hf-hub:someone/tiny" + ("@v2" if rev == "v2" else "")
        assert (torch.tensor(h["online"][name]) - want).abs().max().item() <= 1e-6
    assert (reference(h["ckpts"]["main"]) - reference(h["ckpts"]["v2"])).abs().max() > 1e-3  # revisions differ


def test_online_errors_are_one_line(hub_cache):
    missing, bad_rev = hub_cache["online"]["hf-hub:someone/missing"], hub_cache["online"]["hf-hub:someone/tiny@nope"]
    assert "no such model repository" in missing and "\n" not in missing
    assert "has no such revision" in bad_rev and "\n" not in bad_rev


OFFLINE = """
import contextlib, io, json, sys, torch
import nin
from nin.cli import main
from nin.errors import NinError
img, out_csv = sys.argv[1], sys.argv[2]
x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
res = {}
with torch.no_grad():
    res["main"] = nin.from_pretrained("hf-hub:someone/tiny")(x).tolist()
    res["v2"] = nin.from_pretrained("someone/tiny", revision="v2")(x).tolist()
    hub_model = torch.hub.load(sys.argv[3], "nin_mnist", source="local", pretrained="hf-hub:someone/tiny@v2")
    res["torch_hub_v2"] = hub_model(x).tolist()
p = nin.Predictor.from_checkpoint("hf-hub:someone/tiny", device="cpu").predict(img)
res["predictor"] = [p.label, p.probability]
res["predict_rc"] = main(["predict", "hf-hub:someone/tiny", img, "--out", out_csv, "--workers", "0", "--no-progress"])
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    res["eval_rc"] = main(["eval", "hf-hub:someone/tiny@v2", "--json", "--batch-size", "32"])
res["eval"] = json.loads(buf.getvalue())
try:
    nin.from_pretrained("hf-hub:someone/never-downloaded")
except NinError as exc:
    res["uncached"] = str(exc)
print(json.dumps(res))
"""


def test_offline_from_the_cache_alone(hub_cache, tmp_path):
    h = hub_cache
    img = tmp_path / "seven.png"
    img.write_bytes(png_bytes(digit(0)))
    env = {**h["env"], "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": h["dead"]}
    res = run_py(OFFLINE, env, str(img), str(tmp_path / "p.csv"), str(TESTS.parent))
    for rev in ("main", "v2"):
        assert (torch.tensor(res[rev]) - reference(h["ckpts"][rev])).abs().max().item() <= 1e-6
    assert (torch.tensor(res["torch_hub_v2"]) - reference(h["ckpts"]["v2"])).abs().max().item() <= 1e-6
    from nin import Predictor

    want = Predictor.from_checkpoint(h["root"] / "main", device="cpu").predict(str(img))
    assert res["predictor"][0] == want.label and res["predictor"][1] == pytest.approx(want.probability, abs=1e-6)
    assert res["predict_rc"] == 0 and want.label in (tmp_path / "p.csv").read_text()
    assert res["eval_rc"] == 0 and res["eval"]["n"] > 0 and res["eval"]["model"] == "nin_mnist"
    assert "not in the Hugging Face cache" in res["uncached"] and "\n" not in res["uncached"]
