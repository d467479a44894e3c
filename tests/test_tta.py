"""The pieces of the time-to-accuracy recipe: test-time views, the weight average, cutout, the budget keeper."""

import json

import pytest
import torch

from nin.data.augment import augment, random_cutout
from nin.models import build_model
from nin.train.ema import WeightEMA
from nin.train.views import shift, view_logits, views


def test_shift_moves_pixels_and_fills_zeros():
    x = torch.zeros(1, 1, 5, 5, dtype=torch.uint8)
    x[0, 0, 2, 2] = 7
    down_right = shift(x, 1, 1)
    assert down_right[0, 0, 3, 3] == 7 and down_right.sum() == 7
    up_left = shift(x, -2, -2)
    assert up_left[0, 0, 0, 0] == 7 and up_left.sum() == 7
    edge = torch.full((1, 1, 3, 3), 1, dtype=torch.uint8)
    assert shift(edge, 1, 1)[0, 0, 0].sum() == 0 and shift(edge, 1, 1).sum() == 4  # zero-filled, not wrapped


def test_views_are_the_image_its_mirror_and_diagonal_shifts():
    assert views(False, 0) == [(False, 0, 0)]
    assert len(views(True, 0)) == 2 and len(views(False, 1)) == 3
    assert set(views(True, 1)) == {(m, d, d) for m in (False, True) for d in (-1, 0, 1)}


def _tiny_model_and_pre():
    from nin.data.preprocess import build_preprocessor
    from nin.train.runtime import select_runtime

    torch.manual_seed(0)
    model = build_model("nin_mnist_half", num_classes=10, in_channels=1, dropout=0.0, batch_norm=True, init="kaiming")
    images = torch.randint(0, 256, (12, 1, 28, 28), dtype=torch.uint8)
    pre = build_preprocessor("mean_std").fit(images)
    rt = select_runtime("cpu", "fp32", "off", "off")
    return model.eval(), images, pre, rt


def test_view_logits_are_the_mean_over_the_views():
    from nin.train.evaluate import predict_logits

    model, images, pre, rt = _tiny_model_and_pre()
    single = predict_logits(model, images, pre, rt)
    torch.testing.assert_close(view_logits(model, images, pre, rt, flips=False, shift_px=0), single)
    torch.testing.assert_close(
        view_logits(model, images, pre, rt, flips=True, shift_px=0), predict_logits(model, images, pre, rt, flips=True)
    )
    manual = sum(
        predict_logits(model, shift(images.flip(3) if m else images, dy, dx), pre, rt) for m, dy, dx in views(True, 1)
    )
    got = view_logits(model, images, pre, rt, flips=True, shift_px=1)
    torch.testing.assert_close(got, manual / 6, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(got, single, atol=1e-3)  # the views do change the scores


def test_weight_ema_follows_its_formula_and_copies_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.0)
    ema = WeightEMA(model, decay=0.9, every=2, warmup=False)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
        model[1].running_mean.fill_(3.0)
    assert not ema.step(model, 1)  # not an update step
    assert ema.step(model, 2)
    w = ema.model[0].weight
    torch.testing.assert_close(w, torch.full_like(w, 0.1))  # 0.9 * 0 + 0.1 * 1
    assert ema.step(model, 4)
    torch.testing.assert_close(ema.model[0].weight, torch.full_like(w, 0.19))
    assert torch.equal(ema.model[1].running_mean, torch.full((2,), 3.0))
    assert model[0].weight.requires_grad and not ema.model[0].weight.requires_grad
    warm = WeightEMA(model, decay=0.99)
    assert warm.current_decay() == pytest.approx(0.1)  # early updates count fully
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(model, decay=1.0)


def test_cutout_zeroes_one_square_and_leaves_other_draws_alone():
    x = torch.full((64, 1, 28, 28), 200, dtype=torch.uint8)
    out = random_cutout(x, 8, torch.Generator().manual_seed(0))
    zeros = (out == 0).flatten(1).sum(1)
    assert zeros.max() == 64 and zeros.min() > 0  # a whole 8x8 square inside, a clipped one at a border
    assert torch.equal(out, random_cutout(x, 8, torch.Generator().manual_seed(0)))
    assert torch.equal(random_cutout(x, 0), x)
    # Without cutout, augment draws exactly what it drew before the option existed.
    a = augment(x, 2, True, torch.Generator().manual_seed(3))
    b = augment(x, 2, True, torch.Generator().manual_seed(3), cutout=0)
    assert torch.equal(a, b)


class _Parts:
    """What the keeper reads of a run: its schedule, config and model."""

    def __init__(self, epochs: int, spe: int, total: int):
        from nin.bench.tta import tta_config
        from nin.train.optim import Schedule

        self.cfg = tta_config(epochs, "cpu").replace(max_steps=total)
        self.schedule = Schedule(self.cfg, spe)
        self.model = torch.nn.Linear(1, 1)


def test_keeper_shortens_the_schedule_when_steps_slow_down(monkeypatch):
    import nin.bench.tta as tta

    clock = [0.0]
    monkeypatch.setattr(tta.time, "perf_counter", lambda: clock[0])
    # 10 steps per epoch, planned 50 steps at 1 s each; a 100 s budget.
    keeper = tta._Keeper(0.0, 100.0, 0.99, True, True, extra_evals=0, ema_decay=0.0)
    parts = _Parts(epochs=8, spe=10, total=50)
    keeper.on_start(parts)
    for step in range(1, 11):  # the first epoch runs at 2 s per step
        clock[0] += 2.0
        keeper.on_step(step)
    clock[0] += 1.0  # its evaluation
    keeper.on_epoch({"epoch": 1, "test_accuracy": 0.5, "complete": True})
    total = parts.schedule.total
    # Already inside the epoch (step 8) the slowdown shortened the plan; at its end, 79 s left at ~2.08 s
    # per step and ~1.04 s per evaluation: about 3 more epochs, far fewer than planned.
    assert keeper.replans[0]["step"] == 8 and keeper.replans[0]["total"] < 50
    assert 10 < total < 50 and total == keeper.replans[-1]["total"]
    assert parts.schedule.factor(total) == 0.0  # the lr still reaches zero, at the new end
    # A target reached ends the run at once.
    with pytest.raises(tta._Stop):
        keeper.on_epoch({"epoch": 2, "test_accuracy": 0.995, "complete": True})
    assert keeper.reached["epoch"] == 2
    # The budget is a hard stop between steps.
    clock[0] = 100.5
    with pytest.raises(tta._Stop):
        keeper.on_step(total + 1)


def test_keeper_lengthens_a_schedule_when_steps_speed_up(monkeypatch):
    import nin.bench.tta as tta

    clock = [0.0]
    monkeypatch.setattr(tta.time, "perf_counter", lambda: clock[0])
    keeper = tta._Keeper(0.0, 100.0, 0.99, True, True, extra_evals=0, ema_decay=0.0)
    parts = _Parts(epochs=8, spe=10, total=40)
    keeper.on_start(parts)
    for step in range(1, 11):
        clock[0] += 0.5
        keeper.on_step(step)
    keeper.on_epoch({"epoch": 1, "test_accuracy": 0.5, "complete": True})
    assert parts.schedule.total == 80  # capped at cfg.epochs x steps per epoch


def test_keeper_reads_low_res_steps_at_their_full_size_cost(monkeypatch):
    import nin.bench.tta as tta

    clock = [0.0]
    monkeypatch.setattr(tta.time, "perf_counter", lambda: clock[0])
    # Progressive resizing: the first 40% of the schedule's steps at half a full step's cost (1 s).
    keeper = tta._Keeper(0.0, 60.0, 0.99, True, True, extra_evals=0, ema_decay=0.0, low_share=0.4, low_ratio=0.5)
    parts = _Parts(epochs=8, spe=10, total=50)
    keeper.on_start(parts)
    for step in range(1, 11):  # epoch 1: low-res steps at 0.5 s, as calibrated
        clock[0] += 0.5
        keeper.on_step(step)
    clock[0] += 1.0  # its evaluation
    keeper.on_epoch({"epoch": 1, "test_accuracy": 0.5, "complete": True})
    # Read as full-size steps of 1 s (x1.04): 52.8 s left fit 6 more evaluations and steps 11..61, whose
    # first 14 (up to 40% of 61) are low-res: 14 x 0.52 + 37 x 1.04 + 6 x 1.04 = 52.0 s. Taken for full-size
    # steps, the 0.5 s would have lengthened the schedule to its cap of 80.
    assert [r["total"] for r in keeper.replans] == [61] and parts.schedule.total == 61


def test_tta_mnist_quick_cli_chooses_a_candidate(capsys):
    from nin.cli import main

    assert main(["bench", "--tta", "mnist", "--quick", "--json", "--device", "cpu", "--budget-min", "5"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["target_accuracy"] == 0.993 and r["budget_s"] == 300
    assert r["model"] in r["recipe"]["candidates"] and r["schedule"]["model"] == r["model"]
    assert set(r["schedule"]["calibration"]) <= set(r["recipe"]["candidates"])
    # The wider candidate was probed first and, fast enough on a few dozen images, then timed in full.
    assert r["schedule"]["probes"]["nin_mnist"]["ruled_out"] is False and "nin_mnist" in r["schedule"]["calibration"]
    assert r["wall_time_s"] <= r["budget_s"]
    assert r["epochs"][-1]["test_time_views"] == 3  # no mirrors for digits: the image and two shifts
    # The schedule ran to its end: 4 steps, the last at 1/3 of the peak (one step before zero).
    assert r["schedule"]["final_total_steps"] == 4
    assert r["epochs"][-1]["lr"] == pytest.approx(r["config"]["lr"] / 3)


def test_a_wider_candidate_whose_probe_is_far_too_slow_is_never_timed_in_full(monkeypatch):
    import nin.bench.tta as tta

    timed = []
    real_time_steps = tta.time_steps
    monkeypatch.setattr(tta, "probe_step_s", lambda cfg, data: 1000.0)  # far beyond a 5-minute budget
    monkeypatch.setattr(tta, "time_steps", lambda cfg, *a: (timed.append(cfg.model), real_time_steps(cfg, *a))[1])
    r = tta.run_tta(tta.TTAOptions(dataset="mnist", quick=True, budget_s=300.0, device="cpu"))
    assert timed == ["nin_mnist_half"] and r["model"] == "nin_mnist_half"
    assert r["schedule"]["probes"] == {"nin_mnist": {"step_s": 1000.0, "ruled_out": True}}
    assert list(r["schedule"]["calibration"]) == ["nin_mnist_half"]


def test_accuracy_is_exact_so_a_target_of_99_3_is_reached_by_1986_of_2000(monkeypatch):
    import importlib

    import torch.nn as nn

    ev = importlib.import_module("nin.train.evaluate")  # the module (nin.train exports a function of that name)

    labels = torch.zeros(2000, dtype=torch.long)
    logits = torch.zeros(2000, 10)
    logits[:1986, 0] = 1.0  # 1,986 right
    logits[1986:, 1] = 1.0  # 14 wrong
    monkeypatch.setattr(ev, "predict_logits", lambda *a, **k: logits)
    acc = ev.evaluate(nn.Identity(), torch.zeros(2000, 1, 2, 2, dtype=torch.uint8), labels, None, None)["accuracy"]
    assert acc == 0.993 and acc >= 0.993  # float32's mean gave 0.99299997, short of the target


def test_a_progressive_resizing_recipe_is_calibrated_at_both_sizes(monkeypatch):
    import dataclasses

    import nin.bench.tta as tta

    real = tta.recipe

    def resized(dataset, epochs=4, device="auto"):
        rec = real(dataset, epochs, device)
        return dataclasses.replace(rec, config=rec.config.replace(low_res=20, low_res_share=0.5))

    monkeypatch.setattr(tta, "recipe", resized)
    r = tta.run_tta(tta.TTAOptions(dataset="mnist", quick=True, budget_s=300.0, device="cpu", model="nin_mnist_half"))
    sched = r["schedule"]
    assert sched["low_res"] == 20 and sched["low_res_share"] == 0.5
    cal = sched["calibration"]["nin_mnist_half"]
    assert cal["low_res_step_s"] > 0 and sched["low_res_ratio"] == pytest.approx(
        cal["low_res_step_s"] / cal["step_s"], rel=1e-2
    )
    assert r["config"]["low_res"] == 20 and r["wall_time_s"] <= r["budget_s"]


@pytest.mark.parametrize("dataset", ["fashion_mnist", "mnist"])
def test_every_recipe_candidate_builds_and_they_run_from_the_narrowest_to_the_widest(dataset):
    from nin.bench.tta_recipe import recipe

    rec = recipe(dataset)
    sizes = [sum(p.numel() for p in build_model(n, num_classes=10, in_channels=1).parameters()) for n in rec.candidates]
    assert len(sizes) >= 2 and sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert rec.config.model == rec.candidates[0] and rec.min_epochs > 0
