import pickle

import pytest
import torch

from nin.errors import CheckpointError
from nin.models import build_model
from nin.train.checkpoint import (
    build_from_checkpoint,
    load_checkpoint,
    load_resumable,
    make_checkpoint,
    save_checkpoint,
)


def _ckpt():
    model = build_model("nin_mnist")
    return make_checkpoint(
        "nin_mnist",
        {},
        model,
        {"name": "scale", "options": {}, "tensors": {}},
        [str(i) for i in range(10)],
        (1, 28, 28),
    ), model


def test_round_trip_rebuilds_the_model(tmp_path):
    ckpt, model = _ckpt()
    save_checkpoint(ckpt, tmp_path / "m.pt")
    again = build_from_checkpoint(load_checkpoint(tmp_path / "m.pt"))
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(again(x), model.eval()(x))


def test_missing_empty_truncated_foreign_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")
    ckpt, _ = _ckpt()
    save_checkpoint(ckpt, tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a nin checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "text.pt")
    with pytest.raises(CheckpointError, match="folder"):
        load_checkpoint(tmp_path)


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_payload_is_refused(tmp_path):
    ckpt, _ = _ckpt()
    ckpt["evil"] = _Payload()
    with open(tmp_path / "evil.pt", "wb") as f:
        torch.save(ckpt, f, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="refusing"):
        load_checkpoint(tmp_path / "evil.pt")


def test_weights_that_do_not_fit(tmp_path):
    ckpt, _ = _ckpt()
    ckpt["model"]["name"] = "nin_cifar10"
    with pytest.raises(CheckpointError, match="do not fit"):
        build_from_checkpoint(ckpt)
    ckpt["model"]["name"] = "resnet50"
    with pytest.raises(CheckpointError, match="cannot build"):
        build_from_checkpoint(ckpt)
    # A checkpoint is input: an unknown option or one of the wrong type is a one-line error, not a traceback.
    ckpt["model"] = {"name": "nin_mnist", "options": {"widht": 3}}
    with pytest.raises(CheckpointError, match=r"cannot build.*widht"):
        build_from_checkpoint(ckpt)
    ckpt["model"] = {"name": "nin_mnist", "options": {"num_classes": "ten"}}
    with pytest.raises(CheckpointError, match="cannot build"):
        build_from_checkpoint(ckpt)


def test_atomic_save_keeps_previous_and_falls_back(tmp_path, caplog):
    ckpt, _ = _ckpt()
    ckpt["resume"] = {"epoch": 1}
    save_checkpoint(ckpt, tmp_path / "last.pt", keep_previous=True)
    ckpt["resume"] = {"epoch": 2}
    save_checkpoint(ckpt, tmp_path / "last.pt", keep_previous=True)
    assert (tmp_path / "last.prev.pt").exists()
    assert not list(tmp_path.glob("*.tmp"))
    (tmp_path / "last.pt").write_bytes(b"garbage")
    got = load_resumable(tmp_path)
    assert got["resume"]["epoch"] == 1
    assert "previous" in caplog.text
