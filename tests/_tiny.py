"""The tiny training config the tests share: the registered `smoke` config, fp32 on the CPU, batch 16, no step cap."""

from __future__ import annotations

import dataclasses

from nin.train import TrainConfig
from nin.train.experiments import get_config


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
