"""Network In Network (Lin, Chen, Yan 2013, arXiv:1312.4400).

A stack of mlpconv blocks whose last layer emits one confidence map per class (§3.2, Fig. 4);
global average pooling turns each map into a logit. ``forward_features`` returns the maps
(B, K, H, W); ``forward_head`` is the GAP; ``forward`` is both.

The model also answers what timm asks of its classifiers (``num_features``, ``reset_classifier``,
``get_classifier``, ``feature_info``, ...; docs/timm.md). NIN's classifier is the last cccp layer, which sits
*before* the pooling: the head after it (GAP) has no parameters, so the features the head pools are the class
maps themselves and ``num_features == num_classes``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

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

    __jit_unused_properties__ = ("num_features", "head_hidden_size", "feature_info")  # timm's, not scripted

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
            block_in = c
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
        self.init_scheme = init
        self.global_pool = "avg"  # "" keeps the maps (timm's reset_classifier(0, ""))
        self.grad_checkpointing = False
        # Channels in front of the classifier: what the net emits once reset_classifier(0) removed it.
        self.pre_classifier_channels = spec.widths[-2] if len(spec.widths) > 1 else block_in
        head = self.get_classifier()
        self._classifier_geometry = {"kernel_size": head.kernel_size, "stride": head.stride, "padding": head.padding}
        self.init_weights(init)

    # --- the paper's idea as the API -------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The category confidence maps before GAP: (B, C, H, W) -> (B, K, h, w)."""
        for module in self.children():
            if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
                x = checkpoint(module, x, use_reentrant=False)
            else:
                x = module(x)
        return x

    def forward_head(self, maps: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling: (B, K, h, w) -> (B, K) logits (the maps unpooled when ``global_pool`` is "").

        ``pre_logits`` is accepted for timm and changes nothing: the classifier (the last cccp) ran before the
        pooling, so the pooled features *are* the logits (docs/timm.md).
        """
        if not self.global_pool:
            return maps
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
            if isinstance(conv, nn.Conv2d):  # not the identity left by reset_classifier(0)
                self._init_conv(name, conv, scheme)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _init_conv(self, name: str, conv: nn.Conv2d, scheme: str) -> None:
        if scheme == "paper":
            nn.init.normal_(conv.weight, 0.0, self._stds[name])
        else:
            # Deviation from paper: He init (fan-in, ReLU gain) avoids the dead-class-map stall.
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)

    # --- what timm asks of a classifier (docs/timm.md) -------------------------------------------
    @property
    def num_features(self) -> int:
        """Channels of the maps the head pools: the class maps (``num_classes``), or the layer in front of the
        classifier once ``reset_classifier(0)`` removed it."""
        return self.num_classes or self.pre_classifier_channels

    @property
    def head_hidden_size(self) -> int:
        """Width of ``forward_head(pre_logits=True)``: ``num_features`` (the head has no hidden layer)."""
        return self.num_features

    def _classifier_slot(self) -> tuple[MLPConv, str]:
        block = [m for m in self.children() if isinstance(m, MLPConv)][-1]
        return block, block.names[-1]

    def get_classifier(self) -> nn.Module:
        """The class-map layer (the last cccp), an ``nn.Identity`` after ``reset_classifier(0)``."""
        block, name = self._classifier_slot()
        return getattr(block, name)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh class-map layer with ``num_classes`` maps (initialised by the net's scheme); 0 removes it, so the
        net emits the pooled maps of the layer before. ``global_pool``: ``"avg"`` (GAP) or ``""`` (no pooling)."""
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"NIN pools by global average: global_pool must be 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        block, name = self._classifier_slot()
        bn = f"{name}_bn"
        bn_layer = hasattr(block, bn)
        if num_classes > 0:
            device = next(self.parameters()).device
            conv = nn.Conv2d(self.pre_classifier_channels, num_classes, **self._classifier_geometry, bias=not bn_layer)
            setattr(block, name, conv.to(device))
            self._init_conv(name, conv, self.init_scheme)
            if bn_layer:
                setattr(block, bn, nn.BatchNorm2d(num_classes).to(device))
        else:
            setattr(block, name, nn.Identity())
            if bn_layer:
                setattr(block, bn, nn.Identity())
        self.num_classes = num_classes

    @property
    def feature_info(self) -> list[dict]:
        """One entry per mlpconv block (its output, before the pool): channels, nominal stride and module name,
        in the form timm's feature extractors read."""
        info, stride = [], 1
        for name, module in self.named_children():
            if isinstance(module, MLPConv):
                stride *= getattr(getattr(module, module.names[0]), "stride", (1,))[0]  # Identity after reset(0)
                info.append({"num_chs": module.out_channels, "reduction": stride, "module": name})
            elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
                stride *= 2
        info[-1]["num_chs"] = self.num_features
        return info

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of keeping them (training only)."""
        self.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter groups for timm's layer-wise learning-rate decay: block 1 is the stem, then one per block."""
        return {"stem": r"^mlpconv1\.", "blocks": r"^mlpconv(\d+)\."}


def feature_size(size: int, blocks: Sequence[BlockSpec]) -> int:
    """Spatial size of the class maps for a square input of ``size`` (ceil-mode pools)."""
    for spec in blocks:
        size = (size + 2 * spec.padding - spec.kernel_size) // spec.stride + 1
        if spec.pool is not None:
            size = math.ceil((size - 3) / 2) + 1
    return size
