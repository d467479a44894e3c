"""The registered NIN nets: the paper's CIFAR-10/100, SVHN and MNIST nets and the ImageNet NIN of the
Caffe/MXNet model zoos. Widths, kernels and init stds are the author's cuda-convnet and Caffe files;
every builder returns the exact parameter count listed there.
"""

from __future__ import annotations

from nin.models.nin import NIN, BlockSpec
from nin.models.registry import register

_N3 = ("conv1", "cccp1", "cccp2"), ("conv2", "cccp3", "cccp4"), ("conv3", "cccp5", "cccp6")


def _small_nin(widths, kernels, pools=("max", "max"), stds=None, num_classes=10, **options) -> NIN:
    """Three mlpconv blocks, 3x3/2 ceil pools and dropout after blocks 1-2, GAP (the paper's nets)."""
    w1, w2, w3 = widths
    k1, k2, k3 = kernels
    stds = stds or {}
    blocks = (
        BlockSpec(k1, w1, _N3[0], padding=k1 // 2, pool=pools[0], dropout_after=True, stds=stds),
        BlockSpec(k2, w2, _N3[1], padding=k2 // 2, pool=pools[1], dropout_after=True, stds=stds),
        BlockSpec(k3, (*w3, num_classes), _N3[2], padding=k3 // 2, pool=None, stds=stds),
    )
    return NIN(blocks, **options)


@register
def nin_cifar10(num_classes: int = 10, in_channels: int = 3, **options) -> NIN:
    """NIN for CIFAR-10 (paper Table 1; 966,986 params): 5x5 192-160-96, 5x5 192-192-192, 3x3 192-192-10."""
    return _small_nin(
        ((192, 160, 96), (192, 192, 192), (192, 192)),
        (5, 5, 3),
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=(32, 32),
        **options,
    )


@register
def nin_cifar10_caffe(num_classes: int = 10, in_channels: int = 3, **options) -> NIN:
    """NIN-CIFAR10 of the Caffe Model Zoo gist: as ``nin_cifar10`` but average pooling after block 2."""
    return _small_nin(
        ((192, 160, 96), (192, 192, 192), (192, 192)),
        (5, 5, 3),
        pools=("max", "avg"),
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=(32, 32),
        **options,
    )


@register
def nin_cifar100(num_classes: int = 100, in_channels: int = 3, **options) -> NIN:
    """NIN for CIFAR-100 (paper Table 2; 984,356 params): the CIFAR-10 net with 100 class maps."""
    stds = {"conv1": 0.001, "cccp1": 0.01, "cccp2": 0.01}  # cuda-convnet layer file; the rest 0.05
    return _small_nin(
        ((192, 160, 96), (192, 192, 192), (192, 192)),
        (5, 5, 3),
        stds=stds,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=(32, 32),
        **options,
    )


@register
def nin_svhn(num_classes: int = 10, in_channels: int = 3, **options) -> NIN:
    """NIN for SVHN (paper Table 3; 1,986,026 params): 5x5 128-96-64, 5x5 320-256-128, 5x5 384-256-10."""
    return _small_nin(
        ((128, 96, 64), (320, 256, 128), (384, 256)),
        (5, 5, 5),
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=(32, 32),
        **options,
    )


@register
def nin_mnist(num_classes: int = 10, in_channels: int = 1, **options) -> NIN:
    """NIN for MNIST (paper Table 4; 349,674 params): 5x5 96-64-48, 5x5 128-96-48, 5x5 128-96-10."""
    return _small_nin(
        ((96, 64, 48), (128, 96, 48), (128, 96)),
        (5, 5, 5),
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=(28, 28),
        **options,
    )


@register
def nin_imagenet(num_classes: int = 1000, in_channels: int = 3, **options) -> NIN:
    """ImageNet NIN of the Caffe/MXNet zoos (7,595,176 params; 224x224 in, 6x6 class maps)."""
    stds = {"conv1": 0.01, "conv3": 0.01, "cccp8_1024": 0.01}  # Caffe gist; the rest 0.05
    blocks = (
        BlockSpec(11, (96, 96, 96), ("conv1", "cccp1", "cccp2"), stride=4, stds=stds),
        BlockSpec(5, (256, 256, 256), ("conv2", "cccp3", "cccp4"), padding=2, stds=stds),
        BlockSpec(3, (384, 384, 384), ("conv3", "cccp5", "cccp6"), padding=1, stds=stds),
        # Caffe names these conv4-1024, cccp7-1024, cccp8-1024; "-" is not allowed in module names,
        # so we use MXNet's spelling and the importers translate.
        BlockSpec(
            3,
            (1024, 1024, num_classes),
            ("conv4_1024", "cccp7_1024", "cccp8_1024"),
            padding=1,
            pool=None,
            dropout_before=True,
            stds=stds,
        ),
    )
    return NIN(blocks, in_channels=in_channels, input_size=(224, 224), **options)
