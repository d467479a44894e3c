"""Time-to-accuracy: train a dataset's speed recipe until a target test accuracy, against the clock.

The recipes (:mod:`nin.bench.tta_recipe`) are narrowed NINs with the modern training tricks; the wall time
counts everything after the data is in memory (calibration, model build, every epoch and evaluation, the
final test-time-view score). By default the budget drives everything: each candidate width is timed for a
few real steps, the widest that still gets the recipe's minimum of epochs is trained (narrower nets seeing
each image more often win short budgets), and its one-cycle schedule gets as many steps as fit, so the lr
reaches zero just before the time is up. At every epoch's end the schedule is re-sized from the speed
measured in that epoch (a shared host drifts), so a slowdown shortens the schedule instead of cutting it off
before its lr anneals. ``epochs=N`` fixes the schedule instead. Training stops at the first epoch whose test
accuracy reaches the target, or once the budget is spent; a run that finishes its schedule is scored once
more with test-time views (mirror, diagonal shifts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field

from nin.bench.budget import StepCost, choose_model, plan_schedule, probe_step_s, time_steps
from nin.bench.runner import load_average
from nin.bench.tta_recipe import Recipe, recipe
from nin.data.dataset import Dataset
from nin.errors import ConfigError
from nin.train.config import TrainConfig
from nin.train.resize import low_res_steps
from nin.train.views import view_accuracy, views

log = logging.getLogger(__name__)

DEFAULT_EPOCHS = 4


@dataclass(frozen=True)
class TTAOptions:
    dataset: str = "fashion_mnist"  # fashion_mnist | mnist (the embedded 8,000/2,000 digits)
    target: float | None = None  # test accuracy, 0-1 (None: the recipe's)
    budget_s: float | None = None  # seconds (None: the recipe's)
    data_root: str | None = None
    device: str = "auto"
    epochs: int | None = None  # a fixed one-cycle schedule of this many epochs; None: sized to the budget
    model: str | None = None  # train this model (None: the widest candidate the budget affords)
    max_epochs: int = 200  # cap of a budget-sized schedule (a fast GPU would otherwise plan thousands)
    flip_tta: bool = True  # after the last epoch, also score the mean logits of the recipe's test-time views
    stop_at_target: bool = True  # False: train the whole schedule (the epoch the target was hit is still kept)
    quick: bool = False  # a few dozen synthetic images, one epoch: checks that the path runs


def tta_config(epochs: int = DEFAULT_EPOCHS, device: str = "auto") -> TrainConfig:
    """The Fashion-MNIST time-to-accuracy recipe (its narrowest width)."""
    return recipe("fashion_mnist", epochs, device).config


def load_fashion_mnist(root: str | None = None) -> tuple[Dataset, Dataset]:
    """(train 60,000, test 10,000) Fashion-MNIST through the dataset registry (official or Debian files)."""
    return _load("fashion_mnist", root)


def _load(name: str, root: str | None) -> tuple[Dataset, Dataset]:
    from nin.data.registry import load_dataset

    return load_dataset(name, "train", root), load_dataset(name, "test", root)


class _Stop(Exception):
    pass


# Share of the budget kept free (the last checkpoint write, timing noise), and the allowances for steps
# running slower than measured: the first plan rests on a few calibration steps; the re-plans on a whole
# epoch (at its end) or its last quarter (inside it), so they need less.
BUDGET_MARGIN = 0.02
SLOWDOWN_ALLOWANCE = 1.1
REPLAN_ALLOWANCE = 1.04
CALIBRATION_STEPS, CALIBRATION_WARMUP = 20, 6
# A wider candidate is first probed (6 steps, no evaluation) and timed in full only when its probe, read this many
# times too slow, would still give it the recipe's minimum of epochs: on a CPU where it is several times slower
# than the narrow net (fp32 on AVX2) its full timing would spend seconds of a 1-minute budget on a net never trained.
PROBE_LENIENCY = 1.5
# Progressive resizing: the low-resolution step is timed by a probe of this many steps (no evaluation).
LOW_RES_PROBE_STEPS, LOW_RES_PROBE_WARMUP = 14, 4


@dataclass
class _Keeper:
    """Watches the clock during training: stops at the budget or the target, re-sizes the schedule.

    At each epoch's end the rest of the schedule is re-planned from that epoch's speed (shorter or longer);
    inside an epoch, every quarter of it, from the speed of the last quarter, and then only shortened: a
    host that slows down mid-epoch (another process starting) still gets its lr to zero in time.
    """

    t0: float
    budget_s: float
    target: float
    stop_at_target: bool
    replan: bool
    extra_evals: int
    ema_decay: float
    overhead_s: float = 0.0  # evaluation + checkpoint per epoch (calibrated; then measured each epoch)
    low_share: float = 0.0  # progressive resizing: the share of the schedule's steps at low resolution
    low_ratio: float = 1.0  # a low-resolution step's time over a full-size one's (calibrated)
    rows: list[dict] = field(default_factory=list)
    reached: dict | None = None
    replans: list[dict] = field(default_factory=list)
    parts: object = None
    ema: object = None
    _stamps: list[float] = field(default_factory=list)
    _cycle_start: float = 0.0
    _last_step: int = 0

    def on_start(self, p) -> None:
        self.parts = p
        self._cycle_start = time.perf_counter()
        if self.ema_decay:
            from nin.train.ema import WeightEMA

            self.ema = WeightEMA(p.model, self.ema_decay, every=5)

    def on_step(self, step: int) -> None:
        now = time.perf_counter()
        self._stamps.append(now)
        self._last_step = step
        if self.ema is not None:
            self.ema.step(self.parts.model, step)
        if now - self.t0 > self.budget_s:
            raise _Stop
        every = max(8, self.parts.schedule.spe // 4)
        if self.replan and len(self._stamps) % every == 0:
            recent = self._stamps[-every:]
            step_s = self._full_step_s(recent[-1] - recent[0], step - every + 1, step)
            self._plan(now, step_s, self.overhead_s, step, shorten_only=True)

    def on_epoch(self, row: dict) -> None:
        now = time.perf_counter()
        self.rows.append({**row, "since_start_s": now - self.t0})
        if self.reached is None and row["test_accuracy"] >= self.target:
            self.reached = self.rows[-1]
            if self.stop_at_target:
                raise _Stop
        if self.replan and row["complete"] and len(self._stamps) > 2:
            self._replan(now)
        self._stamps, self._cycle_start = [], now

    def _replan(self, now: float) -> None:
        n, last = len(self._stamps), self._last_step
        mean_s = (self._stamps[-1] - self._stamps[0]) / (n - 1)
        self.overhead_s = max(0.0, (now - self._cycle_start) - n * mean_s)  # evaluation, logging, checkpoint
        step_s = self._full_step_s(self._stamps[-1] - self._stamps[0], last - n + 1, last)
        self._plan(now, step_s, self.overhead_s, self.parts.schedule.spe * self.rows[-1]["epoch"])

    def _full_step_s(self, seconds: float, first: int, last: int) -> float:
        """A full-size step's time, from the ``seconds`` between the ends of steps ``first`` and ``last``.

        The steps timed may be low-resolution ones (progressive resizing), which cost ``low_ratio`` of a
        full-size step; steps are counted from 1, and step k trained at low resolution when k - 1 is below
        the current schedule's boundary.
        """
        boundary = low_res_steps(self.low_share, self.parts.schedule.total) if self.low_share else 0
        n_low = max(0, min(last, boundary) - first)  # of the steps first + 1 .. last
        n_full = (last - first) - n_low
        return seconds / max(1e-9, n_low * self.low_ratio + n_full)

    def _plan(self, now: float, step_s: float, overhead_s: float, done: int, shorten_only: bool = False) -> None:
        p = self.parts
        step_s *= REPLAN_ALLOWANCE
        cost = StepCost(step_s, overhead_s * REPLAN_ALLOWANCE, step_s * self.low_ratio)
        left = self.budget_s * (1 - BUDGET_MARGIN) - (now - self.t0)
        plan = plan_schedule(cost, p.schedule.spe, left, p.cfg.epochs, self.extra_evals, done, self.low_share)
        before = p.schedule.total
        if shorten_only and plan.steps >= before:
            return
        p.schedule.retarget(plan.steps)
        self.replans.append({"step": done, "step_s": round(step_s, 4), "total_before": before, "total": plan.steps})


def run_tta(opts: TTAOptions) -> dict:
    """Train the recipe until the target or the budget; returns the result as a JSON-able dict."""
    from nin.data.synthetic import synthetic_dataset
    from nin.train.engine import train

    rec = recipe(opts.dataset, opts.epochs or DEFAULT_EPOCHS, opts.device)
    target = rec.target if opts.target is None else opts.target
    budget_s = rec.budget_s if opts.budget_s is None else opts.budget_s
    load_start = load_average()
    if opts.quick:
        shape = (1, 28, 28)
        data = (
            synthetic_dataset(shape, 10, 64, seed=1, name="tta-quick:train"),
            synthetic_dataset(shape, 10, 32, seed=2, name="tta-quick:test"),
        )
        quick_cfg = rec.config.replace(batch_size=16, epochs=opts.epochs or 1)
        rec = dataclasses.replace(rec, config=quick_cfg, min_epochs=1)
    else:
        data = _load(rec.config.dataset, opts.data_root)
    cfg = rec.config.replace(model=opts.model or rec.candidates[0])
    n_views = len(views(cfg.flip, rec.shift_px)) if opts.flip_tta else 0
    t0, cpu0 = time.perf_counter(), time.process_time()  # the clock includes the calibration below
    schedule: dict = {"sized_to_budget": opts.epochs is None}
    if opts.epochs is None:
        cfg, schedule = _fit_to_budget(rec, cfg, data, opts, budget_s, t0, n_views)
    overhead = schedule.get("eval_s", 0.0)
    keeper = _Keeper(t0, budget_s, target, opts.stop_at_target, opts.epochs is None, n_views, rec.ema_decay, overhead)
    if cfg.low_res:
        keeper.low_share, keeper.low_ratio = cfg.low_res_share, schedule.get("low_res_ratio", 1.0)

    with tempfile.TemporaryDirectory() as tmp:
        finished = False
        with contextlib.suppress(_Stop):
            train(
                cfg,
                out_dir=tmp,
                progress=False,
                data=data,
                on_start=keeper.on_start,
                on_step=keeper.on_step,
                on_epoch=keeper.on_epoch,
            )
            finished = True
    rows = keeper.rows
    if finished and rows and n_views > 1 and (keeper.reached is None or not opts.stop_at_target):
        p = keeper.parts
        # Deviation from paper: the final score averages test-time views (and, if the recipe asks, scores a
        # weight average); the paper reports single-view scores of the last weights.
        model = keeper.ema.model if keeper.ema is not None else p.model
        acc = view_accuracy(model, data[1].images, data[1].labels, p.pre, p.rt, cfg.flip, rec.shift_px)
        rows.append({**rows[-1], "test_accuracy": acc, "since_start_s": time.perf_counter() - t0, "views": n_views})
        if keeper.reached is None and acc >= target and rows[-1]["since_start_s"] <= budget_s:
            keeper.reached = rows[-1]
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    reached = keeper.reached
    schedule["replans"] = keeper.replans
    schedule["final_total_steps"] = keeper.parts.schedule.total if keeper.parts is not None else None
    return {
        "dataset": rec.config.dataset if not opts.quick else "synthetic (quick)",
        "model": cfg.model,
        "target_accuracy": target,
        "budget_s": budget_s,
        "reached": reached is not None,
        "time_to_target_s": round(reached["since_start_s"], 1) if reached else None,
        "epochs_to_target": reached["epoch"] if reached else None,
        "best_test_accuracy": max((r["test_accuracy"] for r in rows), default=float("nan")),
        "final_test_accuracy": rows[-1]["test_accuracy"] if rows else None,
        "epochs_run": sum("views" not in r for r in rows),
        "wall_time_s": round(wall, 1),
        "process_cpu_time_s": round(cpu, 1),  # all threads; on a shared host it says how much machine we got
        "img_s": [round(r["img_per_s"], 1) for r in rows if "views" not in r],
        "epochs": [
            {
                **{k: r[k] for k in ("epoch", "test_accuracy", "train_loss", "img_per_s", "since_start_s", "lr")},
                "test_time_views": r.get("views", 1),
            }
            for r in rows
        ],
        "schedule": schedule,
        "recipe": {"candidates": list(rec.candidates), "min_epochs": rec.min_epochs, "shift_px": rec.shift_px},
        "config": cfg.to_dict(),
        "options": asdict(opts),
        "threads": _threads(),
        "load_avg_start": load_start,
        "load_avg_end": load_average(),
    }


def _fit_to_budget(
    rec: Recipe,
    cfg: TrainConfig,
    data: tuple[Dataset, Dataset],
    opts: TTAOptions,
    budget_s: float,
    t0: float,
    n_views: int,
) -> tuple[TrainConfig, dict]:
    """The recipe's model and one-cycle schedule sized to the seconds left (``model``, ``epochs``, ``max_steps``)."""
    spe = max(1, len(data[0]) // cfg.batch_size)
    names = (opts.model,) if opts.model else rec.candidates
    max_epochs = 1 if opts.quick else opts.max_epochs
    engine_log = logging.getLogger("nin.train.engine")
    level = engine_log.level
    engine_log.setLevel(logging.WARNING)  # the calibration's own epoch line would read like a result
    costs: list[tuple[str, StepCost]] = []
    probes: dict[str, float] = {}
    share = cfg.low_res_share if cfg.low_res else 0.0
    full = cfg.replace(low_res=0, low_res_share=0.0)
    try:
        for i, name in enumerate(names):
            if i > 0 and _ruled_out(rec, full.replace(model=name), data, spe, budget_s, t0, probes):
                break  # too slow for the minimum of epochs, and a wider one slower still
            m = time_steps(full.replace(model=name), data, CALIBRATION_STEPS, CALIBRATION_WARMUP)
            low_s = _low_res_step_s(cfg.replace(model=name), data) if share else 0.0
            allow = SLOWDOWN_ALLOWANCE
            costs.append((name, StepCost(m.step_s * allow, m.eval_s * allow, low_s * allow)))
            left = budget_s * (1 - BUDGET_MARGIN) - (time.perf_counter() - t0)
            try:
                steps = plan_schedule(costs[-1][1], spe, left, max_epochs, n_views, 0, share).steps
            except ConfigError:
                steps = 0
            if steps < rec.min_epochs * spe:
                break  # a wider candidate would be slower still
    finally:
        engine_log.setLevel(level)
    left = budget_s * (1 - BUDGET_MARGIN) - (time.perf_counter() - t0)
    model, plan = choose_model(costs, spe, left, max_epochs, rec.min_epochs, n_views, share)
    log.info("schedule sized to the budget: %s, %d steps over %d epochs", model, plan.steps, plan.epochs)
    # Room for the re-plans at epoch ends to lengthen the schedule if the machine speeds up (a calibration
    # taken while another process held a core can be several times too slow).
    epochs = min(max_epochs, 4 * plan.epochs + 1)
    info = {
        "sized_to_budget": True,
        "model": model,
        "epochs": plan.epochs,
        "steps": plan.steps,
        "steps_per_epoch": spe,
        "eval_s": round(dict(costs)[model].eval_s, 3),  # with the allowance: the keeper's first overhead estimate
        "calibration": {
            n: {
                "step_s": round(c.step_s / SLOWDOWN_ALLOWANCE, 4),
                "eval_s": round(c.eval_s / SLOWDOWN_ALLOWANCE, 2),
                **({"low_res_step_s": round(c.low_step_s / SLOWDOWN_ALLOWANCE, 4)} if share else {}),
            }
            for n, c in costs
        },
        "probes": {n: {"step_s": round(v, 4), "ruled_out": n not in dict(costs)} for n, v in probes.items()},
        "slowdown_allowance": SLOWDOWN_ALLOWANCE,
        **(_low_res_info(cfg, dict(costs)[model]) if share else {}),
        "calibration_s": round(time.perf_counter() - t0, 1),
    }
    return cfg.replace(model=model, epochs=epochs, max_steps=plan.steps), info


def _low_res_step_s(cfg: TrainConfig, data: tuple[Dataset, Dataset]) -> float:
    """A progressive-resizing step's time: a probe whose steps all train at ``cfg.low_res``."""
    steps = LOW_RES_PROBE_STEPS
    # Every step the probe times at low resolution: the share is of its schedule of steps + 1.
    return probe_step_s(cfg.replace(low_res_share=(steps + 0.5) / (steps + 1)), data, steps, LOW_RES_PROBE_WARMUP)


def _low_res_info(cfg: TrainConfig, cost: StepCost) -> dict:
    ratio = round(cost.low_step_s / cost.step_s, 4) if cost.low_step_s else 1.0
    return {"low_res": cfg.low_res, "low_res_share": cfg.low_res_share, "low_res_ratio": ratio}


def _ruled_out(
    rec: Recipe, cfg: TrainConfig, data: tuple[Dataset, Dataset], spe: int, budget_s: float, t0: float, probes: dict
) -> bool:
    """True when a probe of ``cfg`` says even ``PROBE_LENIENCY`` times its speed misses ``rec.min_epochs``."""
    step_s = probe_step_s(cfg, data)
    probes[cfg.model] = step_s
    left = budget_s * (1 - BUDGET_MARGIN) - (time.perf_counter() - t0)
    return step_s / PROBE_LENIENCY * rec.min_epochs * spe > left


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def format_tta(r: dict) -> str:
    head = (
        f"time-to-accuracy, {r['dataset']}: target {100 * r['target_accuracy']:.1f}% within "
        f"{r['budget_s'] / 60:.1f} min ({r['model']}, batch {r['config']['batch_size']}, "
        f"{r['threads']} threads, load {r['load_avg_start']} -> {r['load_avg_end']})"
    )
    lines = [head]
    sched = r.get("schedule") or {}
    if sched.get("sized_to_budget"):
        timed = ", ".join(f"{n} {c['step_s']:.3f} s/step" for n, c in sched["calibration"].items())
        lines.append(
            f"  schedule sized to the budget: {sched['model']}, {sched['steps']} steps in {sched['epochs']} epochs "
            f"(measured {timed}; planned with {sched['slowdown_allowance']:.2f}x that; "
            f"re-sized at epoch ends to {sched['final_total_steps']} steps)"
        )
    for e in r["epochs"]:
        tag = f" ({e['test_time_views']} test-time views)" if e["test_time_views"] > 1 else ""
        lines.append(
            f"  epoch {e['epoch']}{tag}: test {100 * e['test_accuracy']:.2f}%  train loss {e['train_loss']:.4f}  "
            f"{e['img_per_s']:.0f} img/s  at {e['since_start_s']:.0f} s"
        )
    if r["reached"]:
        target, epochs, secs = 100 * r["target_accuracy"], r["epochs_to_target"], r["time_to_target_s"]
        lines.append(f"reached {target:.1f}% after {epochs} epochs in {secs:.0f} s")
    else:
        best, epochs, secs = 100 * r["best_test_accuracy"], r["epochs_run"], r["wall_time_s"]
        lines.append(f"target not reached: best {best:.2f}% after {epochs} epochs, {secs:.0f} s")
    lines.append(f"wall time {r['wall_time_s']:.0f} s, process CPU time {r['process_cpu_time_s']:.0f} s")
    return "\n".join(lines)
