"""``nin export --hub DIR``: the folder's files, its config.json (the contract timm reads), the model card parsed by
huggingface_hub's own loader, ``nin.from_pretrained(dir)``, the imported ImageNet NIN's provenance, and ``nin push``
up to the call (HfApi replaced: no network)."""

from __future__ import annotations

import json
import os
from typing import ClassVar

import huggingface_hub
import pytest
import torch
from huggingface_hub import ModelCard

import nin
from _interop import FIX, seeded
from fixtures.serve.builders import make_ckpt
from nin.cli import main
from nin.train.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint

METRICS = {"accuracy": 0.8125, "loss": 0.6042, "error_pct": 18.75, "n": 160, "epoch": 3}


def logits(model_or_ckpt, shape=(1, 28, 28), seed=0) -> torch.Tensor:
    model = build_from_checkpoint(model_or_ckpt) if isinstance(model_or_ckpt, dict) else model_or_ckpt
    x = torch.randn(5, *shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("hubfolder")
    ckpt = make_ckpt(classes=[f"digit {i}" for i in range(10)])
    ckpt["metrics"] = dict(METRICS)
    save_checkpoint(ckpt, root / "m.pt")
    out = root / "nin-mnist-tiny"
    assert main(["export", str(root / "m.pt"), "--hub", str(out), "--repo-id", "someone/nin-mnist-tiny"]) == 0
    return ckpt, out


def test_the_folder_holds_the_four_files_and_the_contracts_config(exported):
    ckpt, out = exported
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "labels.json", "model.safetensors"]
    assert json.loads((out / "labels.json").read_text()) == ckpt["classes"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architecture"] == "nin_mnist" and cfg["num_classes"] == cfg["num_features"] == 10
    assert cfg["label_names"] == ckpt["classes"]
    assert cfg["model_args"] == {"batch_norm": True, "init": "kaiming"}  # num_classes / in_channels are timm's own
    p = cfg["pretrained_cfg"]
    assert (
        p["input_size"] == [1, 28, 28] and p["first_conv"] == "mlpconv1.conv1" and p["classifier"] == "mlpconv3.cccp6"
    )
    assert p["crop_pct"] == 1.0 and p["num_classes"] == 10 and cfg["nin_preprocess_exact"] is True
    timm_fields = {"input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode", "num_classes"}
    timm_fields |= {"first_conv", "classifier", "license", "tag"}
    assert set(p) <= timm_fields  # timm builds its PretrainedCfg dataclass from these keys
    # timm's convention: x / 255, then (x - mean) / std; nin's mean_std works on 0-255 pixels.
    mean, std = ckpt["preprocess"]["tensors"]["mean"], ckpt["preprocess"]["tensors"]["std"]
    assert p["mean"] == pytest.approx((mean / 255).tolist()) and p["std"] == pytest.approx((std / 255).tolist())
    assert cfg["nin"]["model"] == ckpt["model"] and cfg["nin"]["metrics"] == METRICS


def test_the_card_parses_and_states_exactly_the_measured_metrics(exported):
    _, out = exported
    card = ModelCard.load(out / "README.md")
    d = card.data
    assert d.library_name == "nin" and d.license == "mit" and d.pipeline_tag == "image-classification"
    assert {"image-classification", "network-in-network", "nin", "timm"} <= set(d.tags)
    assert d.datasets == ["synthetic_mnist"]
    assert {(r.metric_type, r.metric_value) for r in d.eval_results} == {("accuracy", 0.8125), ("loss", 0.6042)}
    assert all(r.dataset_split == "test" and r.task_type == "image-classification" for r in d.eval_results)
    assert "1312.4400" in card.text and "@inproceedings{lin2014network" in card.text
    for how in ('nin.from_pretrained("someone/nin-mnist-tiny")', 'timm.create_model("hf-hub:someone/nin-mnist-tiny"'):
        assert how in card.text
    assert 'torch.hub.load("path/to/nin", "nin_mnist"' in card.text


def test_a_checkpoint_without_metrics_gets_a_card_without_any(tmp_path):
    ckpt = make_ckpt()
    ckpt["metrics"] = {}
    save_checkpoint(ckpt, tmp_path / "m.pt")
    assert main(["export", str(tmp_path / "m.pt"), "--hub", str(tmp_path / "h")]) == 0
    card = ModelCard.load(tmp_path / "h" / "README.md")
    assert card.data.eval_results is None and card.data.metrics is None
    assert "records no measured metrics" in card.text


def test_from_pretrained_on_the_folder_reproduces_the_logits(exported):
    ckpt, out = exported
    model = nin.from_pretrained(out)
    assert not model.training
    assert (logits(model) - logits(ckpt)).abs().max().item() <= 1e-6
    assert (logits(load_checkpoint(out)) - logits(ckpt)).abs().max().item() <= 1e-6


def test_export_json_names_the_parity_and_the_metrics(exported, tmp_path, capsys):
    _, out = exported
    assert main(["export", str(out), "--hub", str(tmp_path / "again"), "--json"]) == 0  # a Hub folder in, too
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "hub" and summary["parity_max_abs_diff"] <= 1e-6
    assert summary["metrics"] == {"accuracy": 0.8125, "loss": 0.6042}


def test_the_imported_imagenet_nin_card_names_its_source_and_licence(tmp_path):
    w = seeded.conv_weights("imagenet", json.loads((FIX / "manifest.json").read_text())["seeds"]["imagenet"])
    w = [(n, (a[:, ::-1].copy() if n == "conv1" else a), b) for n, a, b in w]
    params = tmp_path / "nin-0000.params"
    params.write_bytes(seeded.ndarray_list(seeded.mxnet_items(w), "V2"))
    pt = tmp_path / "nin_imagenet.pt"
    assert main(["import", "mxnet", str(FIX / "nin-symbol.json"), str(params), "-o", str(pt)]) == 0
    assert main(["export", str(pt), "--hub", str(tmp_path / "hub"), "--repo-id", "someone/nin-imagenet"]) == 0
    card = ModelCard.load(tmp_path / "hub" / "README.md")
    assert card.data.license == "other" and card.data.eval_results is None  # nothing measured by the import
    ckpt = load_checkpoint(pt)
    for f in ckpt["source"]["files"]:
        assert f["file"] in card.text and f["md5"] in card.text
    assert "Imported with `nin import` from the mxnet files" in card.text
    assert "terms under which the original weights were published apply" in card.text
    cfg = json.loads((tmp_path / "hub" / "config.json").read_text())
    p = cfg["pretrained_cfg"]
    assert p["input_size"] == [3, 224, 224] and p["crop_pct"] == pytest.approx(224 / 256)
    assert p["mean"] == pytest.approx([123 / 255, 117 / 255, 104 / 255]) and cfg["nin_preprocess_exact"] is True
    assert cfg["nin"]["source"] == ckpt["source"] and p["classifier"] == "mlpconv4.cccp8_1024"
    back = load_checkpoint(tmp_path / "hub")
    assert back["source"] == ckpt["source"] and len(back["classes"]) == 1000
    assert (logits(back, (3, 224, 224)) - logits(ckpt, (3, 224, 224))).abs().max().item() <= 1e-6


# --- nin push ------------------------------------------------------------------------------------------------
class RecordingApi:
    """Stands in for huggingface_hub.HfApi: records the calls nin push makes, sends nothing."""

    calls: ClassVar[list] = []

    def __init__(self, token=None):
        self.calls.append(("init", token))

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def create_branch(self, repo_id, **kw):
        self.calls.append(("create_branch", repo_id, kw))

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw))
        return huggingface_hub.CommitInfo(
            commit_url=f"https://huggingface.co/{kw['repo_id']}/commit/abc",
            commit_message="m",
            commit_description="",
            oid="abc",
        )


@pytest.fixture
def api(monkeypatch):
    RecordingApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    return RecordingApi.calls


def test_push_checks_the_folder_then_creates_the_repo_and_uploads(exported, api, capsys):
    _, out = exported
    argv = ["push", str(out), "someone/nin-mnist-tiny", "--private", "--revision", "v1", "--token", "t0k", "--json"]
    assert main(argv) == 0
    assert (
        json.loads(capsys.readouterr().out)["commit_url"] == "https://huggingface.co/someone/nin-mnist-tiny/commit/abc"
    )
    names = [c[0] for c in api]
    assert names == ["init", "create_repo", "create_branch", "upload_folder"] and api[0][1] == "t0k"
    assert api[1][1] == "someone/nin-mnist-tiny" and api[1][2]["private"] is True and api[1][2]["exist_ok"] is True
    up = api[3][1]
    assert up["folder_path"] == str(out) and up["revision"] == "v1" and up["repo_id"] == "someone/nin-mnist-tiny"
    assert sorted(up["allow_patterns"]) == ["README.md", "config.json", "labels.json", "model.safetensors"]


def test_push_refuses_a_bad_folder_before_any_call(exported, api, tmp_path, capsys):
    import shutil

    _, out = exported
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    (bad / "README.md").unlink()
    assert main(["push", str(bad), "someone/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "lacks README.md" in err and len(err.splitlines()) == 1
    shutil.copy(out / "README.md", bad / "README.md")
    (bad / "labels.json").write_text(json.dumps(["a"] * 10))
    assert main(["push", str(bad), "someone/x"]) == 2
    assert "differ from the weights' classes" in capsys.readouterr().err
    (bad / "labels.json").write_text((out / "labels.json").read_text())
    (bad / "model.safetensors").write_bytes(b"\x80\x04junk")
    assert main(["push", str(bad), "someone/x"]) == 2
    assert "is a Python pickle" in capsys.readouterr().err
    assert main(["push", str(out), "no-slash"]) == 2
    assert "is not ORG/NAME" in capsys.readouterr().err
    assert api == []  # HfApi was never even built


def test_serve_takes_a_hub_folder(exported, monkeypatch):
    """`nin serve DIR`: the command resolves the folder to its weights, the workers' app serves them."""
    import uvicorn
    from fastapi.testclient import TestClient

    from fixtures.serve.builders import digit, png_bytes
    from nin.serve.app import create_app
    from nin.serve.settings import ENV_VAR, ServeSettings

    ckpt, out = exported
    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(kw))
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert main(["serve", str(out), "--port", "8765"]) == 0 and started
    settings = ServeSettings.from_json(os.environ.pop(ENV_VAR))
    assert settings.checkpoint == str((out / "model.safetensors").resolve())
    with TestClient(create_app(settings)) as c:
        import time

        deadline = time.monotonic() + 60
        while c.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)  # the model loads in the background, as in a worker
        r = c.post("/api/predict", files={"file": ("d.png", png_bytes(digit(1)), "image/png")})
        assert r.status_code == 200, r.text
        labels = [row["label"] for row in r.json()["output"][0]["prediction"]]
    assert labels and set(labels) <= set(ckpt["classes"])
