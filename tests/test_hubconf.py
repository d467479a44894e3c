"""hubconf.py: ``torch.hub.load(repo, name, source="local")`` for every registered model, with weights from a file,
a Hub folder or an hf-hub id, and from a checkout where nin is not installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fixtures.serve.builders import make_ckpt
from nin.errors import CheckpointError
from nin.hub.folder import export_hub_folder
from nin.hub.safetensors_io import save_safetensors
from nin.models import build_model, describe_model, list_models
from nin.train.checkpoint import build_from_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def hub_module():
    """hubconf as torch.hub imports it, and the entries it would list (public callables of the module)."""
    from torch.hub import MODULE_HUBCONF, _import_module

    module = _import_module(MODULE_HUBCONF, str(ROOT / MODULE_HUBCONF))
    return module, sorted(f for f in dir(module) if callable(getattr(module, f)) and not f.startswith("_"))


def logits(model, seed=0):
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("hubconf")
    ckpt = make_ckpt()
    save_checkpoint(ckpt, root / "m.pt")
    save_safetensors(ckpt, root / "m.safetensors")
    export_hub_folder(ckpt, root / "folder")
    return ckpt, root


def test_one_entry_per_registered_model_and_nothing_else():
    module, entries = hub_module()
    assert entries == list_models()
    assert "torch" in module.dependencies
    for name in entries:
        assert getattr(module, name).__doc__.startswith(describe_model(name)), name


def test_load_builds_each_model_as_build_model_does():
    model = torch.hub.load(str(ROOT), "nin_cifar10", source="local")
    assert sum(p.numel() for p in model.parameters()) == 966_986
    model = torch.hub.load(str(ROOT), "nin_mnist", source="local", num_classes=7, batch_norm=True)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 7)
    ref = build_model("nin_mnist", num_classes=7, batch_norm=True)
    assert [k for k in model.state_dict()] == [k for k in ref.state_dict()]


@pytest.mark.parametrize("kind", ["m.pt", "m.safetensors", "folder"])
def test_pretrained_from_a_file_or_a_hub_folder_reproduces_the_logits(weights, kind):
    ckpt, root = weights
    model = torch.hub.load(str(ROOT), "nin_mnist", source="local", pretrained=str(root / kind))
    assert not model.training
    assert (logits(model) - logits(build_from_checkpoint(ckpt))).abs().max().item() <= 1e-6


def test_pretrained_of_another_architecture_or_true_is_refused(weights):
    _, root = weights
    with pytest.raises(CheckpointError, match="holds 'nin_mnist', not 'nin_cifar10'"):
        torch.hub.load(str(ROOT), "nin_cifar10", source="local", pretrained=str(root / "folder"))
    with pytest.raises(ValueError, match="nin ships no weights"):
        torch.hub.load(str(ROOT), "nin_mnist", source="local", pretrained=True)


NOT_INSTALLED = """
import json, sys
from pathlib import Path
real_src = Path(sys.argv[2]).resolve()
sys.path = [p for p in sys.path if Path(p or ".").resolve() != real_src]  # drop the editable install's entry
try:
    import nin
    raise SystemExit("nin is still importable")
except ImportError:
    pass
import torch
model = torch.hub.load(sys.argv[1], "nin_mnist", source="local", pretrained=sys.argv[3])
x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    print(json.dumps({"file": sys.modules["nin"].__file__, "logits": model(x).tolist()}))
"""


def test_works_from_a_checkout_where_nin_is_not_installed(weights, tmp_path):
    ckpt, root = weights
    repo = tmp_path / "checkout"
    shutil.copytree(ROOT / "src" / "nin", repo / "src" / "nin", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "hubconf.py", repo / "hubconf.py")
    argv = [sys.executable, "-c", NOT_INSTALLED, str(repo), str(ROOT / "src"), str(root / "folder")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(out["file"]).resolve().is_relative_to(repo.resolve())  # the checkout's copy was used
    assert (torch.tensor(out["logits"]) - logits(build_from_checkpoint(ckpt))).abs().max().item() <= 1e-6
