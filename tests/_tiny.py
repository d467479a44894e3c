"""The tiny training config the tests share: the registered `smoke` config, fp32 on the CPU, batch 16, no step cap;
and a run killed at a step, then resumed."""

from __future__ import annotations

import dataclasses

import pytest

from nin.train import TrainConfig, train
from nin.train.experiments import get_config
from nin.train.runtime import select_runtime

CPU32 = select_runtime("cpu", "fp32", "off", "off")


def tiny_cfg(**kw) -> TrainConfig:
    base = dataclasses.replace(
        get_config("smoke"),
        name="tiny",
        description="tiny NIN-MNIST on synthetic digits",
        batch_size=16,
        max_steps=0,
        device="cpu",
        precision="fp32",
        channels_last="off",
    )
    return dataclasses.replace(base, **kw)


def interrupted_then_resumed(cfg: TrainConfig, out_dir, data, at_step: int):
    """Train ``cfg`` until step ``at_step`` raises KeyboardInterrupt, then resume it; returns the resumed result."""

    def crash(step: int) -> None:
        if step == at_step:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, out_dir=out_dir, progress=False, data=data, runtime=CPU32, on_step=crash)
    return train(cfg, out_dir=out_dir, resume=True, progress=False, data=data, runtime=CPU32)
