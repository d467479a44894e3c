"""safetensors checkpoints: the round trip, every command reading them, and one-line refusals of bad files."""

from __future__ import annotations

import json
import pickle

import pytest
import safetensors.torch as safetensors_torch
import torch

from fixtures.serve.builders import digit, make_ckpt, png_bytes, save_ckpt
from nin.cli import main
from nin.errors import CheckpointError
from nin.hub.safetensors_io import load_safetensors, save_safetensors
from nin.train.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint


def logits(ckpt: dict, seed: int = 0) -> torch.Tensor:
    c, h, w = (ckpt["input"][k] for k in ("channels", "height", "width"))
    x = torch.randn(6, c, h, w, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return build_from_checkpoint(ckpt)(x)


@pytest.fixture(scope="module")
def pt(tmp_path_factory):
    return save_ckpt(tmp_path_factory.mktemp("st") / "m.pt")


@pytest.fixture(scope="module")
def st(pt):
    assert main(["export", str(pt), "--format", "safetensors"]) == 0
    return pt.with_suffix(".safetensors")


def test_checkpoint_to_safetensors_and_back_keeps_logits_and_everything_else(pt, st, tmp_path):
    a, b = load_checkpoint(pt), load_checkpoint(st)
    assert (logits(a) - logits(b)).abs().max().item() <= 1e-6
    for key in ("model", "classes", "input", "metrics", "train", "format_version", "kind", "nin_version"):
        assert a[key] == b[key], key
    assert b["preprocess"]["name"] == "mean_std"
    for name, t in a["preprocess"]["tensors"].items():
        assert torch.equal(t, b["preprocess"]["tensors"][name])
    # ... and back to a .pt checkpoint, which loads as any other
    save_checkpoint(b, tmp_path / "back.pt")
    assert (logits(load_checkpoint(tmp_path / "back.pt")) - logits(a)).abs().max().item() <= 1e-6


def test_the_file_is_plain_safetensors_the_contract_describes(pt, st):
    tensors = safetensors_torch.load_file(str(st))
    pre = {k for k in tensors if k.startswith("preprocess.")}
    assert pre == {"preprocess.mean", "preprocess.std"}
    model = build_from_checkpoint(load_checkpoint(pt))
    model.load_state_dict({k: v for k, v in tensors.items() if k not in pre}, strict=True)
    from safetensors import safe_open

    with safe_open(str(st), "pt") as f:
        meta = f.metadata()
    assert meta["format"] == "pt"
    nin = json.loads(meta["nin"])
    assert nin["model"]["name"] == "nin_mnist" and nin["preprocess"] == {"name": "mean_std", "options": {}}
    assert "state_dict" not in nin and "resume" not in nin


def test_zca_tensors_travel_in_the_file(tmp_path):
    ckpt = make_ckpt(model="nin_cifar10", shape=(3, 32, 32), preprocess="gcn_zca")
    save_safetensors(ckpt, tmp_path / "z.safetensors")
    back = load_safetensors(tmp_path / "z.safetensors")
    assert set(back["preprocess"]["tensors"]) == set(ckpt["preprocess"]["tensors"]) and ckpt["preprocess"]["tensors"]
    for name, t in ckpt["preprocess"]["tensors"].items():
        assert torch.equal(t, back["preprocess"]["tensors"][name])


def test_eval_predict_classmaps_and_export_read_a_safetensors_file(pt, st, tmp_path, capsys):
    assert main(["eval", str(pt), "--json", "--batch-size", "32"]) == 0
    want = json.loads(capsys.readouterr().out)
    assert main(["eval", str(st), "--json", "--batch-size", "32"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["accuracy"] == want["accuracy"] and got["loss"] == pytest.approx(want["loss"], abs=1e-6)
    assert got["n"] == want["n"] > 0
    img = tmp_path / "d.png"
    img.write_bytes(png_bytes(digit(3)))
    rows = {}
    for f in (pt, st):
        out = tmp_path / f"{f.suffix[1:]}.jsonl"
        assert main(["predict", str(f), str(img), "--out", str(out), "--workers", "0", "--no-progress"]) == 0
        rows[f.suffix] = [json.loads(line) for line in out.read_text().splitlines()]
    a, b = rows[".pt"][-1], rows[".safetensors"][-1]
    assert a["label"] == b["label"] and a["probability"] == pytest.approx(b["probability"], abs=1e-6)
    assert main(["classmaps", str(st), str(img), "--out", str(tmp_path / "maps.png")]) == 0
    assert (tmp_path / "maps.png").stat().st_size > 0
    assert main(["export", str(st), "--format", "safetensors", "-o", str(tmp_path / "again.safetensors")]) == 0
    assert (logits(load_checkpoint(tmp_path / "again.safetensors")) - logits(load_checkpoint(pt))).abs().max() == 0


def test_predictor_reads_safetensors(pt, st):
    from nin import Predictor

    a, b = Predictor.from_checkpoint(pt, device="cpu"), Predictor.from_checkpoint(st, device="cpu")
    pa, pb = a.predict(digit(5)), b.predict(digit(5))
    assert pa.labels == pb.labels and pa.probabilities == pytest.approx(pb.probabilities, abs=1e-6)
    assert b.info.source == st.name


# --- refusals: one line, what is wrong, nothing executed -------------------------------------------------------
class Payload:
    """Unpickling this creates the marker file: proof that a loader ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def refused(capsys, path, *phrases) -> str:
    assert main(["eval", str(path), "--dataset", "synthetic_mnist"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for phrase in phrases:
        assert phrase in err, err
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    return err


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_pickle_payload_is_refused_and_never_run(tmp_path, capsys, protocol):
    marker = tmp_path / "ran"
    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps({"state_dict": Payload(marker)}, protocol=protocol))
    refused(capsys, bad, "is a Python pickle, not safetensors", "refusing")
    assert not marker.exists()


def test_a_torch_file_renamed_safetensors_is_refused_and_never_run(tmp_path, capsys):
    marker = tmp_path / "ran"
    bad = tmp_path / "model.safetensors"
    torch.save({"x": Payload(marker)}, bad)
    refused(capsys, bad, "PyTorch zip (pickle) file, not safetensors", "refusing to unpickle")
    assert not marker.exists()


def test_garbage_and_truncated_headers(st, tmp_path, capsys):
    data = st.read_bytes()
    short = tmp_path / "short.safetensors"
    short.write_bytes(data[:5])
    refused(capsys, short, "truncated")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    refused(capsys, cut, "truncated", "ends at byte")
    noise = tmp_path / "noise.safetensors"
    noise.write_bytes(bytes(range(7, 250)) * 40)
    refused(capsys, noise, "not a safetensors file or is truncated")
    n = int.from_bytes(data[:8], "little")
    garbled = tmp_path / "garbled.safetensors"
    garbled.write_bytes(data[:9] + b"\xff" * (n - 1) + data[8 + n :])
    refused(capsys, garbled, "garbled safetensors header")


def test_wrong_shapes_for_the_named_model(tmp_path, capsys):
    ckpt = make_ckpt()
    ckpt["state_dict"] = make_ckpt(classes=[str(i) for i in range(7)])["state_dict"]  # 7 class maps, not 10
    save_safetensors(ckpt, tmp_path / "shapes.safetensors")
    refused(capsys, tmp_path / "shapes.safetensors", "'mlpconv3.cccp6.weight' has shape (7,", "needs (10,")


def test_no_nin_metadata_and_no_config_beside_it(tmp_path, capsys):
    safetensors_torch.save_file(make_ckpt()["state_dict"], str(tmp_path / "bare.safetensors"))
    refused(capsys, tmp_path / "bare.safetensors", "no 'nin' metadata and no config.json beside it")


def test_a_foreign_architecture_is_named(tmp_path, capsys):
    folder = tmp_path / "resnet"
    folder.mkdir()
    safetensors_torch.save_file({"conv1.weight": torch.zeros(64, 3, 7, 7)}, str(folder / "model.safetensors"))
    timm_config = {
        "architecture": "resnet50",
        "num_classes": 1000,
        "pretrained_cfg": {"input_size": [3, 224, 224], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    }
    (folder / "config.json").write_text(json.dumps(timm_config))
    err = refused(capsys, folder, "'resnet50' model, which is not a nin architecture")
    assert "nin_cifar10" in err  # says what nin has


def test_a_timm_style_config_of_a_nin_model_is_enough(tmp_path):
    """A model.safetensors without nin's metadata, beside a config.json as timm writes it (no nin block)."""
    from nin.hub.config import hub_config
    from nin.hub.safetensors_io import checkpoint_metadata

    ckpt = make_ckpt()
    folder = tmp_path / "timm"
    folder.mkdir()
    safetensors_torch.save_file(ckpt["state_dict"], str(folder / "model.safetensors"))
    config = hub_config(ckpt, checkpoint_metadata(ckpt))
    del config["nin"]
    (folder / "config.json").write_text(json.dumps(config))
    back = load_checkpoint(folder)
    assert back["classes"] == ckpt["classes"] and back["model"]["name"] == "nin_mnist"
    assert (logits(back) - logits(ckpt)).abs().max().item() <= 1e-6
    from nin.data.preprocess import preprocessor_from_state  # timm's mean/std read back as nin's mean_std

    x = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    a = preprocessor_from_state(ckpt["preprocess"])(x)
    b = preprocessor_from_state(back["preprocess"])(x)
    assert (a - b).abs().max().item() < 1e-4


def test_export_from_a_folder_or_hub_name_needs_an_output_file(tmp_path, capsys):
    from nin.hub.folder import export_hub_folder

    export_hub_folder(make_ckpt(), tmp_path / "h")
    for fmt in ("safetensors", "onnx"):
        assert main(["export", str(tmp_path / "h"), "--format", fmt]) == 2
        assert "name the file to write with -o" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "h"), "--format", "safetensors", "-o", str(tmp_path / "h.safetensors")]) == 0
    assert load_checkpoint(tmp_path / "h.safetensors")["model"]["name"] == "nin_mnist"


def test_without_the_hub_extra_the_commands_say_which_extra(pt, tmp_path, monkeypatch, capsys):
    import sys

    for name in ("safetensors", "safetensors.torch"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now fails as if it were absent
    assert main(["export", str(pt), "--format", "safetensors", "-o", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs safetensors" in err and "pip install 'nin[hub]'" in err
    assert not (tmp_path / "x.safetensors").exists()


def test_the_format_constants_are_the_checkpoints():
    from nin.hub import safetensors_io
    from nin.train import checkpoint

    assert (safetensors_io.FORMAT_VERSION, safetensors_io.KIND) == (checkpoint.FORMAT_VERSION, checkpoint.KIND)
