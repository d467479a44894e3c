"""Sizing a one-cycle schedule to a time budget (nin bench --tta)."""

import pytest

from nin.bench.budget import Plan, StepCost, choose_model, plan_schedule, probe_step_s, time_steps
from nin.bench.tta import tta_config
from nin.data.synthetic import synthetic_dataset
from nin.errors import ConfigError


def test_plan_fills_the_budget_with_steps_and_evaluations():
    cost = StepCost(step_s=1.0, eval_s=10.0)
    # 100 steps per epoch; 3 epochs = 300 s of steps + 3 evaluations = 330 s.
    assert plan_schedule(cost, 100, 330.0, max_epochs=20) == Plan(3, 300)
    # 10 s short of that: the third epoch is cut to 90 steps (the schedule ends there, lr at 0).
    assert plan_schedule(cost, 100, 320.0, max_epochs=20) == Plan(3, 290)
    # The two extra evaluations of test-time flips come out of the steps.
    assert plan_schedule(cost, 100, 330.0, max_epochs=20, extra_evals=2) == Plan(3, 280)


def test_plan_never_counts_an_epoch_it_cannot_reach():
    cost = StepCost(step_s=1.0, eval_s=10.0)
    # 215 s: 2 epochs need 220 s; with 3 started epochs only 185 steps fit, i.e. 2 epochs' worth minus 15.
    plan = plan_schedule(cost, 100, 215.0, max_epochs=20)
    assert plan == Plan(2, 195)
    assert (plan.epochs - 1) * 100 < plan.steps <= plan.epochs * 100


def test_plan_is_capped_and_fails_clearly_when_nothing_fits():
    assert plan_schedule(StepCost(0.001, 0.01), 100, 3600.0, max_epochs=5) == Plan(5, 500)
    with pytest.raises(ConfigError, match="does not fit one training step"):
        plan_schedule(StepCost(step_s=2.0, eval_s=10.0), 100, 11.0, max_epochs=20)


def test_time_steps_measures_the_real_loop():
    data = (synthetic_dataset((1, 28, 28), 10, 96, seed=1), synthetic_dataset((1, 28, 28), 10, 32, seed=2))
    cost = time_steps(tta_config(1, "cpu").replace(batch_size=8), data, steps=6, warmup=2)
    assert 0 < cost.step_s < 30 and 0 < cost.eval_s < 30
    with pytest.raises(ConfigError, match="at least 2 batches"):
        time_steps(tta_config(1, "cpu").replace(batch_size=64), data)


def test_a_probe_times_a_few_real_steps_and_never_evaluates(monkeypatch):
    import nin.train.engine as engine

    data = (synthetic_dataset((1, 28, 28), 10, 96, seed=1), synthetic_dataset((1, 28, 28), 10, 32, seed=2))
    steps = []

    def no_evaluation(*_a, **_k):
        raise AssertionError("a probe must stop before the evaluation")

    monkeypatch.setattr(engine, "_evaluate", no_evaluation)
    real_step = engine.train

    def counting_train(*a, on_step=None, **k):
        return real_step(*a, on_step=lambda s: (steps.append(s), on_step(s)), **k)

    monkeypatch.setattr(engine, "train", counting_train)
    step_s = probe_step_s(tta_config(1, "cpu").replace(batch_size=8), data, steps=6, warmup=2)
    assert 0 < step_s < 30 and steps == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ConfigError, match="at least 3 batches"):
        probe_step_s(tta_config(1, "cpu").replace(batch_size=64), data)


def test_replan_counts_only_the_time_still_to_come():
    cost = StepCost(step_s=1.0, eval_s=10.0)
    # 2 of 5 epochs done (200 steps); 330 s left fit 3 more epochs with their evaluations.
    assert plan_schedule(cost, 100, 330.0, max_epochs=5, done_steps=200) == Plan(5, 500)
    # Only 250 s left: 3 evaluations (30 s) and 220 more steps, so the run ends 20 steps into epoch 5.
    assert plan_schedule(cost, 100, 250.0, max_epochs=5, done_steps=200) == Plan(5, 420)
    # No time for another step: the schedule ends where the run stands (never an error mid-run).
    assert plan_schedule(cost, 100, 5.0, max_epochs=5, done_steps=200) == Plan(2, 200)


def test_plan_counts_the_cheaper_low_res_steps_at_their_cost():
    cost = StepCost(step_s=1.0, eval_s=10.0, low_step_s=0.5)
    # Half the steps at 0.5 s: 3 epochs (300 steps) take 150 x 0.5 + 150 x 1 + 3 x 10 = 255 s, where all at
    # full size would take 330 s; a second less and the schedule loses two steps (one low-res, one full).
    assert plan_schedule(cost, 100, 255.0, max_epochs=20, low_share=0.5) == Plan(3, 300)
    assert plan_schedule(cost, 100, 254.0, max_epochs=20, low_share=0.5) == Plan(3, 298)
    assert cost.seconds(0, 300, 0.5) == 225.0 and cost.seconds(0, 300) == 300.0
    # Re-planned after 200 steps: the low-res steps still to come (the share of the new total) count at 0.5 s.
    assert cost.seconds(100, 400, 0.5) == 100 * 0.5 + 200 * 1.0
    # 280 s left: 3 more evaluations (30 s) and those 250 s of steps.
    assert plan_schedule(cost, 100, 280.0, max_epochs=4, done_steps=100, low_share=0.5) == Plan(4, 400)


def test_width_is_bought_only_with_time_left_after_min_epochs():
    half, wide = StepCost(step_s=1.0, eval_s=10.0), StepCost(step_s=2.0, eval_s=20.0)
    costs = [("narrow", half), ("wide", wide)]
    # 100 steps per epoch. 3,300 s: narrow gets 30 epochs, wide 15 -- under min_epochs=20, so narrow.
    assert choose_model(costs, 100, 3300.0, max_epochs=200, min_epochs=20) == ("narrow", Plan(30, 3000))
    # 5,000 s: wide reaches 22 full epochs (22 x 220 s = 4,840 s), 70 steps of a 23rd, and is chosen.
    assert choose_model(costs, 100, 5000.0, max_epochs=200, min_epochs=20) == ("wide", Plan(23, 2270))
    # Too short for even one wide step: the narrow net runs what fits.
    assert choose_model(costs, 100, 25.0, max_epochs=200, min_epochs=20) == ("narrow", Plan(1, 15))


def test_retargeted_one_cycle_anneals_to_zero_at_the_new_end():
    from nin.train.optim import Schedule

    cfg = tta_config(10, "cpu")
    sched = Schedule(cfg.replace(max_steps=600), steps_per_epoch=100)
    assert sched.total == 600 and sched.factor(600) == 0.0
    sched.retarget(750)
    assert sched.total == 750
    assert sched.factor(749) > 0 and sched.factor(749) < 0.01 and sched.factor(750) == 0.0
    assert sched.factor(600) > 0.2  # no longer the end
    sched.retarget(5000)  # never past cfg.epochs
    assert sched.total == 1000
