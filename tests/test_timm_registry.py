"""NIN inside timm: registration in either import order, pretrained weights from a nin .safetensors / .pt
checkpoint and from a Hub folder, timm's data config and transforms, and the steps of timm's validate.py and
inference.py on a folder of images."""

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

timm = pytest.importorskip(
    "timm", reason="timm is not installed in this venv: `make test-timm` runs these in .venv-timm"
)
from PIL import Image  # noqa: E402

from _tiny import tiny_cfg  # noqa: E402
from nin.data.preprocess import preprocessor_from_state  # noqa: E402
from nin.train import load_checkpoint, train  # noqa: E402
from nin.train.checkpoint import build_from_checkpoint  # noqa: E402
from nin.train.runtime import select_runtime  # noqa: E402


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "order",
    [
        "import nin, timm",
        "import timm, nin",
        # an availability check before the import (as other libraries do) must not use up the hook
        "import nin, importlib.util; assert importlib.util.find_spec('timm'); import timm",
    ],
)
def test_registered_in_either_import_order(order):
    from nin.models import list_models

    r = _run(f"{order}; import json; print(json.dumps([timm.is_model('nin_cifar10'), sorted(timm.list_models())]))")
    assert r.returncode == 0, r.stderr
    registered, names = json.loads(r.stdout)
    assert registered
    assert set(list_models()) <= set(names), set(list_models()) - set(names)  # every nin model, however added
    assert "WARNING" not in r.stderr.upper() or "nin:" not in r.stderr


def test_import_nin_stays_free_of_torch_and_registration_is_idempotent():
    r = _run("import sys, nin; print('torch' in sys.modules, 'timm' in sys.modules)")
    assert r.returncode == 0 and r.stdout.split() == ["False", "False"], r.stderr
    from nin.integrations.timm_registry import register_all

    assert register_all() == []  # already registered by the import above
    assert len(timm.list_models("nin*")) == len(set(timm.list_models("nin*")))


def test_a_failing_registration_warns_and_leaves_timm_working():
    code = (
        "import sys, types; broken = types.ModuleType('nin.integrations.timm_registry')\n"
        "def register_all(): raise RuntimeError('boom')\n"
        "broken.register_all = register_all; sys.modules['nin.integrations.timm_registry'] = broken\n"
        "import nin, timm; m = timm.create_model('resnet18'); print(timm.is_model('nin_cifar10'))"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
    assert "could not register the NIN models in timm (RuntimeError: boom)" in r.stderr


# --- a tiny trained checkpoint and the files a nin export writes ------------------------------------------------
def write_nin_safetensors(ckpt: dict, path) -> None:
    """nin's own safetensors writer (the file of the shared contract)."""
    from nin.hub.safetensors_io import save_safetensors

    save_safetensors(ckpt, path)


def timm_stats(ckpt: dict) -> tuple[list[float], list[float]]:
    """timm's mean/std (0-1 pixels) of a mean_std Preprocessor (0-255 pixels)."""
    t = ckpt["preprocess"]["tensors"]
    return (t["mean"] / 255).tolist(), (t["std"] / 255).tolist()


def write_hub_folder(ckpt: dict, folder) -> None:
    """The folder ``nin export --hub`` writes (model.safetensors, config.json, README.md, labels.json)."""
    from nin.hub.folder import export_hub_folder

    export_hub_folder(ckpt, folder, repo_id="nin-test/tiny")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from nin.data.synthetic import synthetic_dataset

    root = tmp_path_factory.mktemp("run")
    data = (
        synthetic_dataset((1, 28, 28), 10, 96, seed=1, name="tiny:train"),
        synthetic_dataset((1, 28, 28), 10, 40, seed=2, name="tiny:test"),
    )
    train(
        tiny_cfg(epochs=1), out_dir=root, progress=False, data=data, runtime=select_runtime("cpu", "fp32", "off", "off")
    )
    ckpt = load_checkpoint(root / "last.pt")
    write_nin_safetensors(ckpt, root / "model.safetensors")
    return root, ckpt, data[1]


def _model_args(ckpt):
    return {k: v for k, v in ckpt["model"]["options"].items() if k not in ("num_classes", "in_channels")}


@pytest.mark.parametrize("filename", ["model.safetensors", "last.pt"])
def test_round_trip_through_timm_holds_to_1e6(trained, filename):
    root, ckpt, _ = trained
    ours = build_from_checkpoint(ckpt)
    theirs = timm.create_model(
        "nin_mnist", pretrained=True, pretrained_cfg_overlay={"file": str(root / filename)}, **_model_args(ckpt)
    ).eval()
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    assert (a - b).abs().max().item() <= 1e-6
    assert not torch.equal(a, timm.create_model("nin_mnist", **_model_args(ckpt)).eval()(x))  # weights did load


def test_pretrained_with_new_classes_or_channels_keeps_the_trunk(trained):
    root, ckpt, _ = trained
    src = str(root / "model.safetensors")
    ours = build_from_checkpoint(ckpt)
    m5 = timm.create_model(
        "nin_mnist", pretrained=True, num_classes=5, pretrained_cfg_overlay={"file": src}, **_model_args(ckpt)
    ).eval()
    assert m5(torch.randn(2, 1, 28, 28)).shape == (2, 5)
    torch.testing.assert_close(m5.mlpconv2.conv2.weight, ours.mlpconv2.conv2.weight, rtol=0, atol=0)
    emb = timm.create_model(
        "nin_mnist", pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": src}, **_model_args(ckpt)
    ).eval()
    assert emb(torch.randn(2, 1, 28, 28)).shape == (2, 96)
    rgb = timm.create_model(
        "nin_mnist", pretrained=True, in_chans=3, pretrained_cfg_overlay={"file": src}, **_model_args(ckpt)
    ).eval()
    gray = torch.rand(2, 1, 28, 28)
    with torch.no_grad():  # timm spreads the grey filter over the three channels: a grey RGB image gives the same
        torch.testing.assert_close(rgb(gray.expand(2, 3, 28, 28)), ours(gray), rtol=1e-4, atol=1e-5)


def test_local_hub_folder_and_checkpoint_path(trained, tmp_path):
    root, ckpt, _ = trained
    write_hub_folder(ckpt, tmp_path / "hub")
    model = timm.create_model(f"local-dir:{tmp_path / 'hub'}", pretrained=True).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert (model(x) - build_from_checkpoint(ckpt)(x)).abs().max().item() <= 1e-6
    assert model.pretrained_cfg["label_names"] == ckpt["classes"]
    assert list(model.pretrained_cfg["mean"]) == pytest.approx(timm_stats(ckpt)[0])
    # timm's create_model(checkpoint_path=...): the preprocess.* tensors are skipped by the model itself
    again = timm.create_model("nin_mnist", checkpoint_path=str(root / "model.safetensors"), **_model_args(ckpt))
    torch.testing.assert_close(again.eval()(x), model(x), rtol=0, atol=1e-6)


def _image_folder(dataset, root):
    for i in range(len(dataset.labels)):
        label = dataset.classes[int(dataset.labels[i])]
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(dataset.images[i, 0].numpy()).save(root / label / f"{i:03d}.png")


def test_validate_and_inference_steps_on_an_image_folder(trained, tmp_path):
    """What timm's validate.py and inference.py do, with timm's public API, on a NIN checkpoint."""
    root, ckpt, test = trained
    mean, std = timm_stats(ckpt)
    model = timm.create_model(
        "nin_mnist",
        pretrained=True,
        pretrained_cfg_overlay={"file": str(root / "model.safetensors"), "mean": mean, "std": std},
        **_model_args(ckpt),
    ).eval()
    config = timm.data.resolve_data_config({}, model=model)
    assert config["input_size"] == (1, 28, 28) and config["mean"] == pytest.approx(tuple(mean))

    folder = tmp_path / "images"
    _image_folder(test, folder)
    dataset = timm.data.ImageDataset(str(folder), input_img_mode="L")
    loader = timm.data.create_loader(dataset, batch_size=8, use_prefetcher=False, num_workers=0, **config)
    logits, targets = [], []
    with torch.no_grad():
        for x, y in loader:
            logits.append(model(x))
            targets.append(y)
    logits, targets = torch.cat(logits), torch.cat(targets)
    assert logits.shape == (len(test.labels), 10)
    top1, top5 = timm.utils.accuracy(logits, targets, topk=(1, 5))
    assert 0 <= top1.item() <= top5.item() <= 100

    # the same images through nin's own preprocessing give the same logits
    names = dataset.filenames()  # relative to the folder: CLASS/FILE
    images = torch.from_numpy(np.stack([np.array(Image.open(folder / n))[None] for n in names]))
    ours = build_from_checkpoint(ckpt)(preprocessor_from_state(ckpt["preprocess"]).apply(images))
    torch.testing.assert_close(logits, ours, rtol=1e-4, atol=1e-4)
    # timm numbers the sorted class folders: nin's class order, as every class has a folder here
    assert sorted(dataset.reader.class_to_idx) == ckpt["classes"]
    expect = torch.tensor([ckpt["classes"].index(n.split("/")[0]) for n in names])
    assert torch.equal(targets, expect)
    assert top1.item() == pytest.approx((ours.argmax(1) == expect).float().mean().item() * 100)

    # inference.py: one PIL image through create_transform, top-k class names
    transform = timm.data.create_transform(**config)
    x = transform(Image.open(folder / names[0]).convert("L")).unsqueeze(0)
    assert x.shape == (1, 1, 28, 28)
    top = model(x).softmax(-1).topk(3)
    assert top.indices.shape == (1, 3)
    torch.testing.assert_close(model(x), logits[:1], rtol=1e-5, atol=1e-5)


class _HubFiles(http.server.BaseHTTPRequestHandler):
    """Answers like the Hub's resolve endpoint for one folder: ``/{org}/{name}/resolve/{revision}/{file}``."""

    folder: Path
    commit = "0123456789abcdef0123456789abcdef01234567"

    def _file(self) -> Path | None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 5 and parts[2] == "resolve" and (self.folder / parts[4]).is_file():
            return self.folder / parts[4]
        return None

    def _head(self) -> bytes | None:
        path = self._file()
        if path is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return None
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("X-Repo-Commit", self.commit)
        self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest() + '"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body

    def do_HEAD(self):
        self._head()

    def do_GET(self):
        body = self._head()
        if body is not None:
            self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


def test_hf_hub_name_loads_offline_from_the_hub_cache(trained, tmp_path):
    """hf-hub:ORG/NAME from a cache that huggingface_hub's own download filled (from a local stand-in for the
    Hub), then read with HF_HUB_OFFLINE=1 in a fresh process."""
    from huggingface_hub import hf_hub_download

    root, ckpt, _ = trained
    write_hub_folder(ckpt, tmp_path / "hub")
    handler = type("Handler", (_HubFiles,), {"folder": tmp_path / "hub"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cache = tmp_path / "cache"
    try:
        for name in ("config.json", "model.safetensors"):
            hf_hub_download("nin-test/tiny", name, cache_dir=cache, endpoint=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join()
    code = (
        "import nin, timm, torch\n"
        "from nin.train import load_checkpoint\n"
        "from nin.train.checkpoint import build_from_checkpoint\n"
        "m = timm.create_model('hf-hub:nin-test/tiny', pretrained=True).eval()\n"
        f"ours = build_from_checkpoint(load_checkpoint({str(root / 'last.pt')!r}))\n"
        "x = torch.randn(4, 1, 28, 28)\n"
        "with torch.no_grad(): print((m(x) - ours(x)).abs().max().item(), m.pretrained_cfg['hf_hub_id'])\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "home")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    diff, hub_id = r.stdout.split()
    assert float(diff) <= 1e-6 and hub_id == "nin-test/tiny"


def test_timm_scripts_see_the_nin_models_through_the_runner(trained, tmp_path):
    """timm's scripts import timm only: run directly they do not know NIN; through nin's runner they do, and a
    validate.py-style script (create_model, load_checkpoint, resolve_data_config) evaluates a nin checkpoint."""
    root, ckpt, _ = trained
    script = tmp_path / "validate.py"
    script.write_text(
        "import sys, timm, torch\n"
        "from timm.models import load_checkpoint\n"
        "if not timm.is_model(sys.argv[1]): sys.exit('unknown model ' + sys.argv[1])\n"
        "m = timm.create_model(sys.argv[1], batch_norm=True, init='kaiming')\n"
        "load_checkpoint(m, sys.argv[2])\n"
        "cfg = timm.data.resolve_data_config({}, model=m)\n"
        "print(tuple(cfg['input_size']), m.eval()(torch.zeros(1, *cfg['input_size'])).argmax().item())\n"
    )
    args = [str(script), "nin_mnist", str(root / "model.safetensors")]
    plain = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 1 and "unknown model nin_mnist" in plain.stderr
    r = subprocess.run(
        [sys.executable, "-m", "nin.integrations.timm_run", *args], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    expect = build_from_checkpoint(ckpt)(torch.zeros(1, 1, 28, 28)).argmax().item()
    assert r.stdout.split() == ["(1,", "28,", "28)", str(expect)]
    missing = subprocess.run(
        [sys.executable, "-m", "nin.integrations.timm_run", str(tmp_path / "nope.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such script" in missing.stderr
