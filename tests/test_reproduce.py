"""`nin reproduce`: every paper row runs (smoke), missing data is reported, and the configs carry the paper."""

import json

import pytest

from nin.cli import main
from nin.data.registry import dataset_info
from nin.errors import ConfigError, TrainingError
from nin.reproduce import PAPER_ROWS, reproduce, row_config, scale_epochs
from nin.train.experiments import get_config, list_configs

# Tables 1-5 and §4.6: the paper's test errors, the targets of the rows.
PAPER = {
    "cifar10": 10.41,
    "cifar10_aug": 8.81,
    "cifar100": 35.68,
    "svhn": 2.35,
    "mnist": 0.47,
    "cifar10_fc": 11.59,
    "cifar10_fc_dropout": 10.88,
    "cifar10_cnn_fc": 17.56,
    "cifar10_cnn_fc_dropout": 15.99,
    "cifar10_cnn_gap": 16.46,
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("NIN_DATA_ROOT", str(tmp_path / "no-data"))
    monkeypatch.setenv("NIN_CACHE_DIR", str(tmp_path / "cache"))


def test_smoke_runs_rows_of_every_kind(tmp_path):
    """The fast check: one row per preprocessing (GCN + ZCA, GCN + LCN, [0, 1] scaling), on synthetic data."""
    report = reproduce(["cifar10", "svhn", "mnist"], tmp_path, smoke=True)
    assert [r["status"] for r in report["rows"]] == ["smoke"] * 3
    assert all(r["steps"] == 2 and r["error_pct"] is not None for r in report["rows"])


@pytest.mark.slow
def test_smoke_runs_every_paper_row(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["reproduce", "--smoke", "--out", str(out), "--no-progress"]) == 0
    table = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert [r["row"] for r in report["rows"]] == list(PAPER_ROWS)
    assert report["smoke"] and report["machine"]["torch"] and report["machine"]["cpu"]
    assert report["machine"]["torch_threads"] >= 1
    for r in report["rows"]:
        assert r["status"] == "smoke" and r["steps"] == 2 and 0 <= r["error_pct"] <= 100, r
        assert r["paper_error"] == PAPER.get(r["row"])
        assert f"`{r['row']}`" in table
    md = (out / "report.md").read_text()
    assert "Smoke run" in md and "| `cifar10` | Table 1, NIN + Dropout | 10.41 |" in md
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md", "report.png"]


def test_rows_without_data_are_listed_with_the_fetch_command(tmp_path):
    root = tmp_path / "empty"
    report = reproduce(["cifar10", "mnist", "svhn"], tmp_path / "r", data_root=str(root))
    assert [r["status"] for r in report["rows"]] == ["data not found"] * 3
    assert report["rows"][0]["fetch"].startswith(f"nin data fetch cifar10 --root {root}")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Data not found" in md and f"`nin data fetch svhn --root {root}" in md
    assert "| `mnist` | Table 4, NIN + Dropout | 0.47 | — |" in md


def test_a_row_with_data_runs_and_a_failing_row_does_not_stop_the_others(tmp_path, monkeypatch):
    import nin.train.engine as engine

    real_train = engine.train

    def train(cfg, **kw):
        if cfg.name == "quickstart":
            raise TrainingError("loss became nan at epoch 1 step 1: training diverged")
        return real_train(cfg, **kw)

    monkeypatch.setattr(engine, "train", train)
    report = reproduce(
        ["quickstart", "smoke"], tmp_path / "r", overrides=["max_steps=2", "epochs=1", "device=cpu", "compile=off"]
    )
    failed, ok = report["rows"]
    assert failed["status"] == "failed" and "diverged" in failed["message"]
    assert ok["status"] == "ok" and ok["steps"] == 2 and ok["epochs"] == 1 and ok["paper_error"] is None
    assert (tmp_path / "r" / "smoke" / "last.pt").exists() and ok["wall_time_s"] > 0
    assert "## Failed rows" in (tmp_path / "r" / "report.md").read_text()


def test_recipes_and_epoch_scaling():
    paper, modern = row_config("cifar10", "paper"), row_config("cifar10", "modern")
    assert (paper.name, modern.name) == ("cifar10", "cifar10_modern")
    assert modern.batch_norm and modern.init == "kaiming" and modern.schedule == "onecycle"
    assert modern.label_smoothing > 0 and modern.preprocess == "mean_std" and modern.model == paper.model
    assert (modern.translate, modern.flip) == (paper.translate, paper.flip)  # same data conditions as the row
    assert row_config("quickstart", "modern").name == "quickstart"
    short = scale_epochs(paper, 0.1)
    assert (short.epochs, short.plateau_patience) == (26, 1)
    assert scale_epochs(paper.replace(schedule="step", milestones=(200, 230)), 0.5).milestones == (100, 115)
    with pytest.raises(ConfigError, match="unknown row 'cifar11'"):
        row_config("cifar11")
    with pytest.raises(ConfigError, match="> 0"):
        scale_epochs(paper, 0)


@pytest.mark.parametrize("row", PAPER_ROWS)
def test_paper_rows_follow_the_paper_recipe(row):
    """The paper recipe: lr, weight decay, groups, init, batch, schedule, preprocessing, epoch budget."""
    cfg = get_config(row)
    assert cfg.paper_error == PAPER.get(row) and cfg.paper_ref
    assert (cfg.batch_size, cfg.momentum, cfg.bias_lr_mult, cfg.last_lr_mult) == (128, 0.9, 2.0, 0.1)
    assert (cfg.init, cfg.batch_norm, cfg.dropout, cfg.label_smoothing) == ("paper", False, 0.5, 0.0)
    assert (cfg.schedule, cfg.gamma, cfg.plateau_drops) == ("plateau", 0.1, 2)
    hundred = row == "cifar100"
    assert (cfg.lr, cfg.weight_decay) == ((0.02, 5e-4) if hundred else (0.1, 1e-4))
    expected_pre = {"cifar10": "gcn_zca", "cifar100": "gcn_zca", "svhn": "gcn_lcn", "mnist": "scale"}
    assert cfg.preprocess == expected_pre[cfg.dataset]
    assert cfg.epochs * (50_000 if cfg.dataset.startswith("cifar") else 0) in (0, 260 * 50_000)
    assert (cfg.translate > 0 and cfg.flip) == (row == "cifar10_aug")


@pytest.mark.parametrize("name", list_configs())
def test_no_config_flips_digits(name):
    cfg = get_config(name)
    if dataset_info(cfg.dataset).digits:
        assert not cfg.flip


def test_reproduce_list_and_bad_arguments(capsys, tmp_path):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(r in out for r in PAPER_ROWS) and "10.41%" in out and "nin data fetch cifar10" in out
    assert main(["reproduce", "cifar11", "--out", str(tmp_path)]) == 2
    assert "unknown row 'cifar11'" in capsys.readouterr().err
    assert main(["reproduce", "--resume"]) == 2


def test_resume_reports_a_finished_row_without_training_it_again(tmp_path):
    sets = ["max_steps=2", "epochs=1", "device=cpu", "compile=off"]
    first = reproduce(["smoke"], tmp_path, overrides=sets)["rows"][0]
    again = reproduce(["smoke"], tmp_path, overrides=sets, resume=True)["rows"][0]
    assert again["status"] == "ok" and again["steps"] == first["steps"] == 2
    assert again["error_pct"] == pytest.approx(first["error_pct"])
    assert again["best_error_pct"] == pytest.approx(first["best_error_pct"])
