"""A missing optional package is one line naming the extra that installs it, for every command that needs one.

Each test hides a package that is installed here (``sys.modules[name] = None`` makes importing it fail as if it
were absent) and runs the command or call that needs it.
"""

import sys

import pytest

from fixtures.serve.builders import save_ckpt
from nin.cli import main
from nin.errors import ConfigError, MissingDependencyError
from nin.extras import EXTRAS, require
from test_viz_support import trained_run


def _hide(monkeypatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def _one_line_naming(capsys, extra: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pip install 'nin[{extra}]'" in err, err
    return err


@pytest.mark.parametrize("module", sorted(EXTRAS))
def test_require_names_the_extra_of_every_optional_package(monkeypatch, module):
    _hide(monkeypatch, module)
    pip, extra = EXTRAS[module]
    with pytest.raises(
        MissingDependencyError, match=rf"needs {pip}, which is not installed: pip install 'nin\[{extra}\]'"
    ):
        require(module, "this")
    assert issubclass(MissingDependencyError, ConfigError)  # the CLI's one-line error, exit code 2


def test_require_returns_the_module_when_it_is_there():
    import json

    assert require("json", "this", package="scipy") is json


def test_serve_without_uvicorn(tmp_path, monkeypatch, capsys):
    ckpt = save_ckpt(tmp_path / "m.pt")
    _hide(monkeypatch, "uvicorn")
    assert main(["serve", str(ckpt), "--port", "8765"]) == 2
    assert "nin serve needs uvicorn" in _one_line_naming(capsys, "serve")


def test_serve_without_fastapi(tmp_path, monkeypatch, capsys):
    ckpt = save_ckpt(tmp_path / "m.pt")
    _hide(monkeypatch, "fastapi")
    assert main(["serve", str(ckpt), "--port", "8765"]) == 2
    assert "nin serve needs fastapi" in _one_line_naming(capsys, "serve")


@pytest.mark.parametrize("hidden", ["onnx", "onnxruntime"])
def test_export_without_onnx_or_onnxruntime(tmp_path, monkeypatch, capsys, hidden):
    ckpt = save_ckpt(tmp_path / "m.pt")
    _hide(monkeypatch, hidden)
    assert main(["export", str(ckpt), "-o", str(tmp_path / "m.onnx")]) == 2
    assert f"needs {hidden}," in _one_line_naming(capsys, "export")
    assert not (tmp_path / "m.onnx").exists()


def test_predict_on_an_onnx_file_without_onnxruntime(tmp_path, monkeypatch, capsys):
    ckpt = save_ckpt(tmp_path / "m.pt")
    assert main(["export", str(ckpt), "-o", str(tmp_path / "m.onnx")]) == 0
    capsys.readouterr()
    _hide(monkeypatch, "onnxruntime")
    assert main(["predict", str(tmp_path / "m.onnx"), str(tmp_path / "any.png")]) == 2
    assert "running an .onnx file needs onnxruntime" in _one_line_naming(capsys, "export")


def test_report_and_classmaps_without_matplotlib(tmp_path, tmp_path_factory, monkeypatch, capsys):
    run = trained_run(tmp_path_factory)
    _hide(monkeypatch, "matplotlib")
    assert main(["report", str(run), "-o", str(tmp_path / "r.html"), "--no-confusion"]) == 2
    assert "drawing plots needs matplotlib" in _one_line_naming(capsys, "viz")
    assert main(["classmaps", str(run / "best.pt"), "--index", "0", "-o", str(tmp_path / "m.png")]) == 2
    _one_line_naming(capsys, "viz")


def test_tensorboard_without_tensorboard(tmp_path, monkeypatch, capsys):
    _hide(monkeypatch, "torch.utils.tensorboard")
    argv = ["train", "--config", "smoke", "--out", str(tmp_path / "run"), "--set", "max_steps=1", "--tensorboard"]
    assert main([*argv, "--no-progress"]) == 2
    assert "--tensorboard needs tensorboard" in _one_line_naming(capsys, "viz")


def test_svhn_without_scipy(tmp_path, monkeypatch):
    from nin.data.svhn import read_svhn_mat

    (tmp_path / "train_32x32.mat").write_bytes(b"MATLAB 5.0")
    _hide(monkeypatch, "scipy")
    with pytest.raises(MissingDependencyError, match=r"reading SVHN needs scipy.*nin\[data\]"):
        read_svhn_mat(tmp_path / "train_32x32.mat")
