import json
import logging
import math

import pytest
import torch

from _tiny import tiny_cfg
from nin.errors import ConfigError, TrainingError
from nin.train import TrainConfig, apply_overrides, load_checkpoint, train
from nin.train.experiments import get_config, list_configs
from nin.train.optim import Schedule, param_groups
from nin.train.runtime import select_runtime

CPU32 = select_runtime("cpu", "fp32", "off", "off")


def test_train_writes_run_folder(tmp_path, tiny_data):
    r = train(tiny_cfg(), out_dir=tmp_path, progress=False, data=tiny_data, runtime=CPU32)
    assert r.steps == 2 * (96 // 16)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    for key in ("lr", "train_loss", "train_error_pct", "test_loss", "test_error_pct", "img_per_s", "wall_time_s"):
        assert key in rows[0]
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["config"]["model"] == "nin_mnist"
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["classes"] == list(tiny_data[0].classes)
    assert ckpt["input"] == {"channels": 1, "height": 28, "width": 28}
    assert ckpt["resume"]["epoch"] == 2
    assert (tmp_path / "best.pt").exists()
    # plain torch.load with weights_only=True reads it: nothing but tensors and plain types inside
    torch.load(tmp_path / "last.pt", weights_only=True)


def _weights(path):
    return load_checkpoint(path)["state_dict"]


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_at,every", [(7, 0), (4, 1), pytest.param(9, 3, marks=pytest.mark.slow)])
def test_resume_equals_uninterrupted_bitwise(tmp_path, tiny_data, crash_at, every):
    """Interrupted at an epoch boundary or mid-epoch, then resumed: the same final weights, bit for bit."""
    cfg = tiny_cfg(checkpoint_every=every, dropout=0.5)
    train(cfg, out_dir=tmp_path / "a", progress=False, data=tiny_data, runtime=CPU32)

    def crash(step):
        if step == crash_at:
            raise Crash

    with pytest.raises(Crash):
        train(cfg, out_dir=tmp_path / "b", progress=False, data=tiny_data, runtime=CPU32, on_step=crash)
    train(cfg, out_dir=tmp_path / "b", resume=True, progress=False, data=tiny_data, runtime=CPU32)
    a, b = _weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = [json.loads(x)["epoch"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert rows == [1, 2]


def test_resume_after_the_last_step_but_before_its_evaluation(tmp_path, tiny_data):
    """Killed between the last step's checkpoint and the epoch's evaluation: the resume evaluates and reports."""
    cfg = tiny_cfg(max_steps=4, checkpoint_every=1, dropout=0.5)
    ref = train(cfg, out_dir=tmp_path / "a", progress=False, data=tiny_data, runtime=CPU32)

    def crash(step):
        if step == 4:
            raise Crash

    with pytest.raises(Crash):
        train(cfg, out_dir=tmp_path / "b", progress=False, data=tiny_data, runtime=CPU32, on_step=crash)
    r = train(cfg, out_dir=tmp_path / "b", resume=True, progress=False, data=tiny_data, runtime=CPU32)
    assert r.steps == 4 and r.final["accuracy"] == ref.final["accuracy"]
    a, b = _weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1]
    assert rows[0]["test_accuracy"] == ref.final["accuracy"]
    assert (tmp_path / "b" / "best.pt").exists()


def test_resume_writes_a_missing_best_checkpoint(tmp_path, tiny_data):
    """Killed after last.pt but before best.pt of the same (mid-epoch, final) evaluation: resuming writes it."""
    cfg = tiny_cfg(max_steps=4)
    train(cfg, out_dir=tmp_path, progress=False, data=tiny_data, runtime=CPU32)
    (tmp_path / "best.pt").unlink()
    train(cfg, out_dir=tmp_path, resume=True, progress=False, data=tiny_data, runtime=CPU32)
    assert (
        load_checkpoint(tmp_path / "best.pt")["metrics"]["error_pct"]
        == load_checkpoint(tmp_path / "last.pt")["metrics"]["error_pct"]
    )


@pytest.mark.parametrize("max_steps", [0, 4])
def test_resume_of_a_finished_run_reports_its_result(tmp_path, tiny_data, max_steps):
    cfg = tiny_cfg(max_steps=max_steps)
    ref = train(cfg, out_dir=tmp_path, progress=False, data=tiny_data, runtime=CPU32)
    before = (tmp_path / "metrics.jsonl").read_text()
    r = train(cfg, out_dir=tmp_path, resume=True, progress=False, data=tiny_data, runtime=CPU32)
    assert r.steps == ref.steps and r.epochs == ref.epochs
    assert r.final["accuracy"] == ref.final["accuracy"]
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == before.count("\n")


def test_resume_refuses_a_different_config(tmp_path, tiny_data):
    train(tiny_cfg(epochs=1), out_dir=tmp_path, progress=False, data=tiny_data, runtime=CPU32)
    with pytest.raises(ConfigError, match="different config"):
        train(tiny_cfg(epochs=2, lr=0.2), out_dir=tmp_path, resume=True, progress=False, data=tiny_data, runtime=CPU32)


def test_resume_can_extend_epochs(tmp_path, tiny_data):
    train(tiny_cfg(epochs=1, schedule="constant"), out_dir=tmp_path, progress=False, data=tiny_data, runtime=CPU32)
    r = train(
        tiny_cfg(epochs=2, schedule="constant"),
        out_dir=tmp_path,
        resume=True,
        progress=False,
        data=tiny_data,
        runtime=CPU32,
    )
    assert r.epochs == 2 and r.steps == 12


@pytest.mark.slow
def test_learns_the_synthetic_task(tmp_path, tiny_data):
    r = train(
        tiny_cfg(epochs=6, translate=0, dropout=0.0), out_dir=tmp_path, progress=False, data=tiny_data, runtime=CPU32
    )
    assert r.final["accuracy"] >= 0.9


def test_stall_is_detected_and_explained(tmp_path, tiny_data):
    # Force dead class maps: a huge negative bias on the last cccp -> ReLU outputs zeros everywhere.
    cfg = tiny_cfg(batch_norm=False, init="paper", stall_steps=3, epochs=2, lr=1e-6)

    import nin.train.prepare as prepare

    real = prepare.build_model

    def dead(name, **opts):
        m = real(name, **opts)
        with torch.no_grad():
            m.last_layer().bias.fill_(-1e3)
        return m

    prepare.build_model = dead
    try:
        with pytest.raises(TrainingError, match=r"stalled.*ln\(10\).*init=kaiming"):
            train(cfg, out_dir=tmp_path, progress=False, data=tiny_data, runtime=CPU32)
        r = train(cfg.replace(on_stall="warn"), out_dir=tmp_path / "w", progress=False, data=tiny_data, runtime=CPU32)
        assert math.isclose(r.final["loss"], math.log(10), rel_tol=1e-4)
    finally:
        prepare.build_model = real


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_data):
    cfg = tiny_cfg(epochs=2, schedule="constant")
    train(cfg.replace(epochs=1), out_dir=tmp_path, progress=False, data=tiny_data, runtime=CPU32)
    good = _weights(tmp_path / "last.pt")
    with pytest.raises(TrainingError, match="diverged"):
        train(cfg.replace(lr=1e30, epochs=2), out_dir=tmp_path / "x", progress=False, data=tiny_data, runtime=CPU32)
    assert not (tmp_path / "x" / "last.pt").exists()
    assert all(torch.equal(good[k], v) for k, v in _weights(tmp_path / "last.pt").items())


def test_paper_parameter_groups():
    from nin.models import build_model

    cfg = TrainConfig(lr=0.1, weight_decay=1e-4)
    groups = {g["name"]: g for g in param_groups(build_model("nin_cifar10"), cfg)}
    assert groups["weights"]["lr"] == pytest.approx(0.1) and groups["weights"]["weight_decay"] == 1e-4
    assert groups["biases"]["lr"] == pytest.approx(0.2) and groups["biases"]["weight_decay"] == 0
    assert groups["last_weights"]["lr"] == pytest.approx(0.01)
    assert groups["last_biases"]["lr"] == pytest.approx(0.02) and groups["last_biases"]["weight_decay"] == 0
    assert sum(len(g["params"]) for g in groups.values()) == 18


def test_schedules():
    spe = 10
    step = Schedule(TrainConfig(schedule="step", epochs=10, milestones=(3, 6)), spe)
    assert [step.factor(e * spe) for e in (0, 3, 6)] == pytest.approx([1, 0.1, 0.01])
    cos = Schedule(TrainConfig(schedule="cosine", epochs=10), spe)
    assert cos.factor(0) == 1 and cos.factor(100) == pytest.approx(0)
    one = Schedule(TrainConfig(schedule="onecycle", epochs=10), spe)
    assert one.factor(0) == pytest.approx(0.04) and one.factor(25) == pytest.approx(1) and one.factor(100) == 0
    plat = Schedule(TrainConfig(schedule="plateau", plateau_patience=2, plateau_drops=2), spe)
    drops = [plat.epoch_end(e) for e in (10, 9, 9, 9, 9, 9, 9, 9)]
    assert sum(drops) == 2 and plat.factor(0) == pytest.approx(0.01)


@pytest.mark.parametrize(
    "key,typo,valid",
    [("model", "nin_mnst", "nin_mnist"), ("dataset", "cifar_10", "cifar10"), ("preprocess", "gcn-zca", "gcn_zca")],
)
def test_a_misspelt_name_fails_before_the_data_loads(tmp_path, key, typo, valid):
    """A typo in a model, dataset or preprocessing name is a one-line ConfigError listing the valid names,
    raised before any data is read or the run folder is made."""
    cfg = get_config("cifar10").replace(data_root=str(tmp_path / "no-data"), **{key: typo})
    expected = rf"{key}='{typo}' is not one of: .*\b{valid}\b.*`nin list "
    with pytest.raises(ConfigError, match=expected):
        train(cfg, out_dir=tmp_path / "run", progress=False, runtime=CPU32)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=expected):
        apply_overrides(get_config("quickstart"), [f"{key}={typo}"])


def test_overrides_are_checked():
    cfg = get_config("quickstart")
    new = apply_overrides(
        cfg, ["epochs=3", "batch_size=32", "lr=0.01", "flip=true", "milestones=2,4", "data_root=none"]
    )
    assert (new.epochs, new.batch_size, new.lr, new.flip, new.milestones) == (3, 32, 0.01, True, (2, 4))
    with pytest.raises(ConfigError, match=r"valid keys:.*epochs"):
        apply_overrides(cfg, ["epoch=3"])
    with pytest.raises(ConfigError, match="expected int"):
        apply_overrides(cfg, ["epochs=three"])
    with pytest.raises(ConfigError, match="true or false"):
        apply_overrides(cfg, ["flip=maybe"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(cfg, ["epochs"])
    with pytest.raises(ConfigError, match="schedule"):
        apply_overrides(cfg, ["schedule=linear"])
    with pytest.raises(ConfigError, match="epochs must be > 0"):
        apply_overrides(cfg, ["epochs=0"])


@pytest.mark.parametrize("name", list_configs())
def test_every_config_runs_a_step(tmp_path, name):
    """Each registered config builds its model and takes one optimiser step on data of its shape."""
    from nin.data.registry import dataset_info
    from nin.data.synthetic import synthetic_dataset

    cfg = get_config(name)
    info = dataset_info(cfg.dataset)
    n = 2 * min(cfg.batch_size, 8)
    data = (
        synthetic_dataset(info.shape, info.num_classes, n, 1),
        synthetic_dataset(info.shape, info.num_classes, 4, 2),
    )
    cfg = cfg.replace(batch_size=n // 2, max_steps=1, epochs=1, device="cpu", stall_steps=0)
    r = train(cfg, out_dir=tmp_path, progress=False, data=data, runtime=CPU32)
    assert r.steps == 1 and math.isfinite(r.final["loss"])


def test_resume_is_bit_identical_with_dropout_and_no_batch_norm(tmp_path, tiny_data):
    cfg = tiny_cfg(batch_norm=False, batch_size=48, checkpoint_every=1, dropout=0.5)

    def crash(step):
        if step == 1:
            raise Crash

    train(cfg, out_dir=tmp_path / "a", progress=False, data=tiny_data, runtime=CPU32)
    with pytest.raises(Crash):
        train(cfg, out_dir=tmp_path / "b", progress=False, data=tiny_data, runtime=CPU32, on_step=crash)
    train(cfg, out_dir=tmp_path / "b", resume=True, progress=False, data=tiny_data, runtime=CPU32)
    a, b = _weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_epoch_log_counts_the_epochs_the_step_schedule_ends_at(tmp_path, tiny_data, caplog):
    # 6 steps an epoch: a 5-epoch cap with max_steps=8 ends inside epoch 2, and the log says so.
    cfg = tiny_cfg(epochs=5, max_steps=8)
    with caplog.at_level(logging.INFO, logger="nin.train.engine"):
        r = train(cfg, out_dir=tmp_path, progress=False, data=tiny_data, runtime=CPU32)
    assert r.steps == 8
    epochs = [m for m in caplog.messages if m.startswith("epoch ")]
    assert [m.split()[1] for m in epochs] == ["1/2", "2/2"]
