"""The mlpconv block (paper §3.1, eq. 2): a k x k convolution followed by 1x1 "cccp" convolutions.

Each convolution is followed by ReLU (and optionally batch norm before it). The 1x1 convolutions are
the paper's "cascaded cross channel parametric pooling" layers, named ``cccpN`` as in the Caffe files.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn


class MLPConv(nn.Module):
    """A micro-network slid over every patch: conv(k x k) -> ReLU -> [cccp(1x1) -> ReLU] * n.

    Args:
        in_channels: input channels.
        widths: output channels of each layer, the first for the k x k conv.
        names: module name of each layer (``conv1``, ``cccp1``, ...), so original weights map by name.
        kernel_size, stride, padding: of the first (spatial) convolution.
        batch_norm: BN after every conv, before its ReLU (modern variant; the paper has none).
        final_relu: ReLU after the last layer. The paper has it everywhere, including before GAP.
    """

    def __init__(
        self,
        in_channels: int,
        widths: Sequence[int],
        names: Sequence[str],
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        batch_norm: bool = False,
        final_relu: bool = True,
    ) -> None:
        super().__init__()
        if len(widths) != len(names) or not widths:
            raise ValueError("MLPConv needs one name per layer width")
        self.names = tuple(names)
        c = in_channels
        for i, (width, name) in enumerate(zip(widths, names, strict=True)):
            k, s, p = (kernel_size, stride, padding) if i == 0 else (1, 1, 0)
            # With BN the conv bias is redundant (BN's shift replaces it).
            self.add_module(name, nn.Conv2d(c, width, k, s, p, bias=not batch_norm))
            if batch_norm:
                self.add_module(f"{name}_bn", nn.BatchNorm2d(width))
            last = i == len(widths) - 1
            if final_relu or not last:
                self.add_module(f"{name}_relu", nn.ReLU(inplace=True))
            c = width
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x

    def convs(self) -> dict[str, nn.Conv2d]:
        """The block's convolutions by their paper/Caffe name."""
        return {name: getattr(self, name) for name in self.names}
