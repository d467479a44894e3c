"""Work counts: multiply-accumulates of a forward pass, and the FLOP convention of the benchmark.

Convention (stated wherever a GFLOP/s figure is printed): 1 MAC = 2 FLOP; a training step costs 3x the
forward (forward, gradient w.r.t. activations, gradient w.r.t. weights). NIN-CIFAR10 is 222.5 M MACs per
32x32 image forward (Table 1 widths), so 1.335 GFLOP per image per training step and 0.445 GFLOP per image
in evaluation.
"""

from __future__ import annotations

import torch
import torch.nn as nn

TRAIN_FACTOR = 3.0  # forward + two backward products


def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass for one image of ``input_shape`` (C, H, W).

    Counts convolutions and linear layers (everything else in NIN is elementwise or pooling, < 1%).
    """
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += out[0].numel() * k

    def linear_hook(m: nn.Linear, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total


def train_gflop_per_image(macs: int) -> float:
    return 2.0 * TRAIN_FACTOR * macs / 1e9


def eval_gflop_per_image(macs: int) -> float:
    return 2.0 * macs / 1e9
