"""Progressive resizing: the first epochs train on smaller images, the rest and every evaluation on full size."""

import pytest
import torch

from _tiny import CPU32, interrupted_then_resumed, tiny_cfg
from nin.errors import ConfigError
from nin.train import apply_overrides, train
from nin.train.resize import low_res, low_res_steps


def test_low_res_resizes_the_batch_and_keeps_a_constant_image_constant():
    x = torch.full((3, 1, 28, 28), 0.75)
    small = low_res(x, 20)
    assert small.shape == (3, 1, 20, 20)
    torch.testing.assert_close(small, torch.full_like(small, 0.75))
    assert low_res(x, 28) is x  # full size: nothing to do
    ramp = torch.linspace(0, 1, 28).expand(1, 1, 28, 28)
    row = low_res(ramp, 14)[0, 0, 0]
    assert torch.all(row[1:] > row[:-1])  # a ramp stays a ramp


def test_the_model_trains_on_small_images_only_in_the_early_epochs(tmp_path, tiny_data):
    seen: list[tuple[bool, int]] = []
    cfg = tiny_cfg(epochs=4, low_res=20, low_res_share=0.5, schedule="constant")

    def record(p) -> None:
        p.model.register_forward_pre_hook(lambda m, args: seen.append((m.training, args[0].shape[-1])))

    train(cfg, out_dir=tmp_path, progress=False, data=tiny_data, runtime=CPU32, on_start=record)
    steps = len(tiny_data[0]) // cfg.batch_size
    training = [side for is_training, side in seen if is_training]
    assert training == [20] * (2 * steps) + [28] * (2 * steps)
    assert low_res_steps(0.5, 4 * steps) == 2 * steps


def test_resume_inside_the_low_res_epochs_equals_an_uninterrupted_run(tmp_path, tiny_data):
    cfg = tiny_cfg(epochs=3, low_res=20, low_res_share=0.6)
    ref = train(cfg, out_dir=tmp_path / "a", progress=False, data=tiny_data, runtime=CPU32)
    got = interrupted_then_resumed(cfg, tmp_path / "b", tiny_data, at_step=3)
    assert got.final["error_pct"] == ref.final["error_pct"]
    assert got.final["loss"] == ref.final["loss"]


@pytest.mark.parametrize(
    "changes, message",
    [
        (["low_res=20"], "set both"),
        (["low_res_share=0.5"], "set both"),
        (["low_res=-1", "low_res_share=0.5"], ">= 0"),
        (["low_res=20", "low_res_share=1"], r"\[0, 1\)"),
    ],
)
def test_low_res_settings_are_checked(changes, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(tiny_cfg(), changes)
