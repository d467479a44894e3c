"""The registered NIN nets as a table of specs: the paper's CIFAR-10/100, SVHN and MNIST nets and the ImageNet
NIN of the Caffe/MXNet model zoos. Widths, kernels and init stds are the author's cuda-convnet and Caffe files;
every net has the exact parameter count listed there.

A variant is one :class:`NetSpec` entry; :func:`paper_blocks` spells the three-block layout the paper's small
nets share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from nin.models.nin import NIN, BlockSpec
from nin.models.registry import register_specs

_N3 = ("conv1", "cccp1", "cccp2"), ("conv2", "cccp3", "cccp4"), ("conv3", "cccp5", "cccp6")


@dataclass(frozen=True)
class NetSpec:
    """One registered NIN variant: its blocks, the input it was designed for and its defaults.

    The last block's ``widths`` stop before the class-map layer, whose width is the number of classes
    (its ``names`` do list that layer).
    """

    doc: str  # one line for `nin list`
    blocks: tuple[BlockSpec, ...]
    input_size: tuple[int, int] = (32, 32)
    in_channels: int = 3
    num_classes: int = 10

    def build(
        self,
        *,
        num_classes: int | None = None,
        in_channels: int | None = None,
        dropout: float = 0.5,
        batch_norm: bool = False,
        final_relu: bool = True,
        init: str = "paper",
    ) -> NIN:
        """The net, with the spec's classes and channels unless given (see :class:`NIN` for the options)."""
        *body, last = self.blocks
        classes = self.num_classes if num_classes is None else num_classes
        blocks = (*body, dataclasses.replace(last, widths=(*last.widths, classes)))
        return NIN(
            blocks,
            in_channels=self.in_channels if in_channels is None else in_channels,
            dropout=dropout,
            batch_norm=batch_norm,
            final_relu=final_relu,
            init=init,
            input_size=self.input_size,
        )


def paper_blocks(
    widths: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]],
    kernels: tuple[int, int, int],
    pools: tuple[str, str] = ("max", "max"),
    stds: Mapping[str, float] | None = None,
) -> tuple[BlockSpec, ...]:
    """The paper's small nets: three mlpconv blocks ("same" padding), 3x3/2 ceil pools and dropout after
    blocks 1-2, then GAP. ``widths[2]`` lists the layers before the class maps."""
    stds = dict(stds or {})
    return tuple(
        BlockSpec(k, w, names, padding=k // 2, pool=pool, dropout_after=i < 2, stds=stds)
        for i, (k, w, names, pool) in enumerate(zip(kernels, widths, _N3, (*pools, None), strict=True))
    )


_CIFAR = (192, 160, 96), (192, 192, 192), (192, 192)
_IMAGENET_STDS = {"conv1": 0.01, "conv3": 0.01, "cccp8_1024": 0.01}  # Caffe gist; the rest 0.05

NETS: dict[str, NetSpec] = {
    "nin_cifar10": NetSpec(
        "NIN for CIFAR-10 (paper Table 1; 966,986 params): 5x5 192-160-96, 5x5 192-192-192, 3x3 192-192-10.",
        paper_blocks(_CIFAR, (5, 5, 3)),
    ),
    "nin_cifar10_caffe": NetSpec(
        "NIN-CIFAR10 of the Caffe Model Zoo gist: as ``nin_cifar10`` but average pooling after block 2.",
        paper_blocks(_CIFAR, (5, 5, 3), pools=("max", "avg")),
    ),
    "nin_cifar100": NetSpec(
        "NIN for CIFAR-100 (paper Table 2; 984,356 params): the CIFAR-10 net with 100 class maps.",
        # cuda-convnet layer file; the rest 0.05
        paper_blocks(_CIFAR, (5, 5, 3), stds={"conv1": 0.001, "cccp1": 0.01, "cccp2": 0.01}),
        num_classes=100,
    ),
    "nin_svhn": NetSpec(
        "NIN for SVHN (paper Table 3; 1,986,026 params): 5x5 128-96-64, 5x5 320-256-128, 5x5 384-256-10.",
        paper_blocks(((128, 96, 64), (320, 256, 128), (384, 256)), (5, 5, 5)),
    ),
    "nin_mnist": NetSpec(
        "NIN for MNIST (paper Table 4; 349,674 params): 5x5 96-64-48, 5x5 128-96-48, 5x5 128-96-10.",
        paper_blocks(((96, 64, 48), (128, 96, 48), (128, 96)), (5, 5, 5)),
        input_size=(28, 28),
        in_channels=1,
    ),
    "nin_imagenet": NetSpec(
        "ImageNet NIN of the Caffe/MXNet zoos (7,595,176 params; 224x224 in, 6x6 class maps).",
        (
            BlockSpec(11, (96, 96, 96), ("conv1", "cccp1", "cccp2"), stride=4, stds=_IMAGENET_STDS),
            BlockSpec(5, (256, 256, 256), ("conv2", "cccp3", "cccp4"), padding=2, stds=_IMAGENET_STDS),
            BlockSpec(3, (384, 384, 384), ("conv3", "cccp5", "cccp6"), padding=1, stds=_IMAGENET_STDS),
            # Caffe names these conv4-1024, cccp7-1024, cccp8-1024; "-" is not allowed in module names,
            # so we use MXNet's spelling and the importers translate.
            BlockSpec(
                3,
                (1024, 1024),
                ("conv4_1024", "cccp7_1024", "cccp8_1024"),
                padding=1,
                pool=None,
                dropout_before=True,
                stds=_IMAGENET_STDS,
            ),
        ),
        input_size=(224, 224),
        num_classes=1000,
    ),
}

register_specs(NETS)
