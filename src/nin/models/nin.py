"""Network In Network (Lin, Chen, Yan 2013, arXiv:1312.4400).

A stack of mlpconv blocks whose last layer emits one confidence map per class (§3.2, Fig. 4);
global average pooling turns each map into a logit. ``forward_features`` returns the maps
(B, K, H, W); ``forward_head`` is the GAP; ``forward`` is both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from nin.models.dropout import Dropout
from nin.models.mlpconv import MLPConv

INIT_SCHEMES = ("paper", "kaiming")


@dataclass(frozen=True)
class BlockSpec:
    """One mlpconv block and what follows it.

    ``widths``/``names`` list the k x k conv then the cccp layers; ``pool`` is ``"max"``, ``"avg"`` or
    ``None`` (3x3 stride 2, ceil mode, as cuda-convnet and Caffe); ``dropout_before`` puts dropout in
    front of the block (the ImageNet net), ``dropout_after`` after its pool (the CIFAR nets).
    """

    kernel_size: int
    widths: tuple[int, ...]
    names: tuple[str, ...]
    padding: int = 0
    stride: int = 1
    pool: str | None = "max"
    dropout_after: bool = False
    dropout_before: bool = False
    # Paper init: N(0, std^2) per layer name (cuda-convnet layer files); layers not listed use `default_std`.
    stds: dict[str, float] = field(default_factory=dict)


class NIN(nn.Module):
    """Network In Network: mlpconv blocks + global average pooling, no fully connected layer.

    Args:
        blocks: the mlpconv blocks; the last one's last width is the number of classes.
        in_channels: image channels (3 for colour, 1 for digits).
        dropout: probability of the paper's dropout layers (0.5 in the paper; 0 disables them).
        batch_norm: batch norm after every conv (the Torch NIN+BN variant; paper: off).
        final_relu: ReLU on the class maps before GAP (paper: on; see docs/reproduction.md, known trap 1).
        init: ``"paper"`` (per-layer N(0, std^2), biases 0) or ``"kaiming"`` (He normal, fan-in).
        default_std: the paper-init standard deviation of layers without their own.
        input_size: (H, W) the net was designed for; recorded, not enforced (GAP takes any size).
    """

    def __init__(
        self,
        blocks: Sequence[BlockSpec],
        in_channels: int = 3,
        dropout: float = 0.5,
        batch_norm: bool = False,
        final_relu: bool = True,
        init: str = "paper",
        default_std: float = 0.05,
        input_size: tuple[int, int] = (32, 32),
    ) -> None:
        super().__init__()
        if init not in INIT_SCHEMES:
            raise ValueError(f"unknown init {init!r}; valid: {', '.join(INIT_SCHEMES)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_size = tuple(input_size)
        self.blocks = tuple(blocks)
        self._stds: dict[str, float] = {}
        c = in_channels
        for i, spec in enumerate(blocks, start=1):
            last = i == len(blocks)
            if spec.dropout_before and dropout > 0:
                self.add_module(f"drop{i - 1}", Dropout(dropout))
            block = MLPConv(
                c,
                spec.widths,
                spec.names,
                spec.kernel_size,
                spec.stride,
                spec.padding,
                batch_norm=batch_norm,
                final_relu=final_relu or not last,
            )
            self.add_module(f"mlpconv{i}", block)
            for name in spec.names:
                self._stds[name] = spec.stds.get(name, default_std)
            if spec.pool is not None:
                pool_cls = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[spec.pool]
                self.add_module(f"pool{i}", pool_cls(3, 2, ceil_mode=True))
            if spec.dropout_after and dropout > 0:
                self.add_module(f"drop{i}", Dropout(dropout))
            c = block.out_channels
        self.num_classes = c
        self.in_channels = in_channels
        self.init_weights(init)

    # --- the paper's idea as the API -------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The category confidence maps before GAP: (B, C, H, W) -> (B, K, h, w)."""
        for module in self.children():
            x = module(x)
        return x

    def forward_head(self, maps: torch.Tensor) -> torch.Tensor:
        """Global average pooling: (B, K, h, w) -> (B, K) logits."""
        return maps.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # --- names and init ---------------------------------------------------------------------------
    def named_layers(self) -> dict[str, nn.Conv2d]:
        """Every convolution by its paper/Caffe name (``conv1``, ``cccp1``, ..., ``cccp8_1024``)."""
        layers: dict[str, nn.Conv2d] = {}
        for module in self.children():
            if isinstance(module, MLPConv):
                layers.update(module.convs())
        return layers

    def last_layer(self) -> nn.Conv2d:
        """The layer that emits the class maps (the paper gives it 0.1x the learning rate)."""
        return list(self.named_layers().values())[-1]

    def init_weights(self, scheme: str = "paper") -> None:
        """Re-initialise: ``paper`` = N(0, std^2) per layer, biases 0 (cuda-convnet layer files); ``kaiming`` = He."""
        for name, conv in self.named_layers().items():
            if scheme == "paper":
                nn.init.normal_(conv.weight, 0.0, self._stds[name])
            else:
                # Deviation from paper: He init (fan-in, ReLU gain) avoids the dead-class-map stall.
                nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


def feature_size(size: int, blocks: Sequence[BlockSpec]) -> int:
    """Spatial size of the class maps for a square input of ``size`` (ceil-mode pools)."""
    for spec in blocks:
        size = (size + 2 * spec.padding - spec.kernel_size) // spec.stride + 1
        if spec.pool is not None:
            size = math.ceil((size - 3) / 2) + 1
    return size
