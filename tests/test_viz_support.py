"""Shared by the test_viz_* modules: one small trained run per test session (it holds no tests itself).

The run trains NIN-MNIST for a few seconds on synthetic digits whose class templates are those of the
registered ``synthetic_mnist`` dataset, so ``nin report`` and ``nin classmaps --index`` can load its test
split by name from the checkpoint alone.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import _tiny
from nin.data.synthetic import synthetic_dataset
from nin.train import TrainConfig, train
from nin.train.runtime import select_runtime

CPU32 = select_runtime("cpu", "fp32", "off", "off")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_data():
    return (
        synthetic_dataset((1, 28, 28), 10, 96, seed=1, name="tiny:train"),
        synthetic_dataset((1, 28, 28), 10, 40, seed=2, name="tiny:test"),
    )


def tiny_cfg(**kw) -> TrainConfig:
    return _tiny.tiny_cfg(**{"translate": 0, "dropout": 0.0, "epochs": 6, **kw})


@functools.lru_cache(maxsize=1)
def _trained(root: str) -> Path:
    out = Path(root) / "tiny-run"
    train(tiny_cfg(), out_dir=out, progress=False, data=tiny_data(), runtime=CPU32)
    return out


def trained_run(tmp_path_factory) -> Path:
    """The run folder of a trained tiny model (trained once per session, then reused)."""
    return _trained(str(tmp_path_factory.getbasetemp()))


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of PNG bytes, checked to be a real PNG."""
    from PIL import Image

    assert data[:8] == PNG_MAGIC
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.size
