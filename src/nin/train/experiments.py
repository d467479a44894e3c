"""The experiments: registered configs, ``get_config(name)``, ``list_configs()``.

One config per paper experiment under the paper recipe and a modern one, plus the embedded-MNIST quickstart
and a tiny smoke config. The config type itself is :class:`nin.train.config.TrainConfig`.
"""

from __future__ import annotations

from nin.errors import ConfigError
from nin.train.config import TrainConfig, validate

_CONFIGS: dict[str, TrainConfig] = {}


def register_config(cfg: TrainConfig) -> TrainConfig:
    if cfg.name in _CONFIGS:
        raise RuntimeError(f"config {cfg.name!r} is registered twice")
    _CONFIGS[cfg.name] = validate(cfg)
    return cfg


def list_configs() -> list[str]:
    return sorted(_CONFIGS)


def get_config(name: str) -> TrainConfig:
    if name not in _CONFIGS:
        raise ConfigError(f"unknown config {name!r}; valid names: {', '.join(list_configs())}")
    return _CONFIGS[name]


# The modern recipe's training settings, shared by the quickstart, every `<row>_modern` config and the
# time-to-accuracy recipe of `nin bench --tta`: per-channel mean/std, BN after every conv, He init, plain
# per-group lr, Nesterov momentum, weight decay 5e-4 on the weights (as in every recipe, biases and BN
# parameters never decay: nin.train.optim), label smoothing, one-cycle lr.
MODERN_RECIPE = dict(
    preprocess="mean_std",
    batch_norm=True,
    init="kaiming",
    bias_lr_mult=1.0,
    last_lr_mult=1.0,
    momentum=0.9,
    nesterov=True,
    weight_decay=5e-4,
    label_smoothing=0.1,
    schedule="onecycle",
    lr=0.1,
)

# The quickstart: NIN-MNIST on the embedded 8,000/2,000 digits, trained fast on a laptop CPU.
# Deviation from paper: BN after every conv, He init, one-cycle lr, label smoothing, +-1 px shifts and no
# dropout (the modern recipe) — the paper recipe needs hundreds of epochs; this one reaches ~99% in 4.
# Chosen by a sweep (3 seeds each): dropout 0.5 lost ~0.8 points in 4 epochs; 3 epochs was ~0.3 worse.
register_config(
    TrainConfig(
        name="quickstart",
        description="NIN-MNIST (paper Table 4 net + BN) on the embedded 10k MNIST digits, modern recipe",
        model="nin_mnist",
        dataset="mnist_embedded",
        **{**MODERN_RECIPE, "label_smoothing": 0.05},
        dropout=0.0,
        translate=1,
        flip=False,
        epochs=4,
        batch_size=64,
    )
)

# A tiny config that runs every code path in seconds (tests, smoke checks).
register_config(
    TrainConfig(
        name="smoke",
        description="2 short epochs of NIN-MNIST on synthetic digits (tests and smoke checks)",
        model="nin_mnist",
        dataset="synthetic_mnist",
        preprocess="mean_std",
        batch_norm=True,
        init="kaiming",
        translate=1,
        epochs=2,
        batch_size=32,
        lr=0.05,
        bias_lr_mult=1.0,
        last_lr_mult=1.0,
        max_steps=6,
        schedule="cosine",
        stall_steps=0,
    )
)


# --- the paper's experiments (Tables 1-5, §4.6), each under the `paper` recipe and a `modern` one -------------
# The `paper` recipe is the author's cuda-convnet one in PyTorch SGD: weights at lr with weight decay 1e-4, biases at
# 2x lr without decay, the last cccp layer at 0.1x, momentum 0.9, batch 128, per-layer N(0, std^2) init,
# dropout 0.5 after pool1/pool2, and the lr divided by 10 twice when the training error plateaus.
# Epoch budget: the author's CIFAR-10 run (~200 epochs at the base lr, then 30 + 30 after the drops) is
# 260 epochs of 390 steps, ~101k steps; the other datasets' budgets are not published, so they get about
# the same number of steps of 128 images.
_PAPER_RECIPE = dict(
    batch_norm=False,
    init="paper",
    dropout=0.5,
    final_relu=True,
    batch_size=128,
    lr=0.1,
    bias_lr_mult=2.0,
    last_lr_mult=0.1,
    momentum=0.9,
    nesterov=False,
    weight_decay=1e-4,
    label_smoothing=0.0,
    schedule="plateau",
    gamma=0.1,
    plateau_drops=2,
)
_CIFAR = dict(dataset="cifar10", preprocess="gcn_zca", epochs=260, plateau_patience=10)


_PREP = {"gcn_zca": "GCN + ZCA", "gcn_lcn": "GCN + LCN", "scale": "pixels in [0, 1]"}
_PAPER_TAG = " — paper recipe"


def _paper(name: str, what: str, **fields) -> TrainConfig:
    cfg = TrainConfig(name=name, **{**_PAPER_RECIPE, **fields})
    return register_config(cfg.replace(description=f"{what}{_PAPER_TAG} ({_PREP[cfg.preprocess]})"))


def _modern(
    paper: TrainConfig, epochs: int, translate: int | None = None, flip: bool | None = None, **changes
) -> TrainConfig:
    """The `modern` recipe of a paper row: same net widths, data and augmentation (unless given), plus BN
    after every conv, He init, one-cycle lr, Nesterov momentum and label smoothing — the accuracy in a
    small fraction of the paper's epochs.
    """
    # Deviation from paper: BN, He init, one-cycle, label smoothing and per-channel mean/std instead of the
    # paper's GCN/ZCA/LCN; this recipe is for users who want the accuracy fast, not for the paper's numbers.
    return register_config(
        paper.replace(
            name=f"{paper.name}_modern",
            description=paper.description.split(_PAPER_TAG)[0] + " — modern recipe (mean/std, BN, He init, one-cycle)",
            **MODERN_RECIPE,
            epochs=epochs,
            translate=paper.translate if translate is None else translate,
            flip=paper.flip if flip is None else flip,
        ).replace(**changes)
    )


_modern(
    _paper(
        "cifar10",
        "NIN on CIFAR-10, no augmentation (Table 1)",
        model="nin_cifar10",
        paper_error=10.41,
        paper_ref="Table 1, NIN + Dropout",
        **_CIFAR,
    ),
    40,
)
_modern(
    _paper(
        "cifar10_aug",
        "NIN on CIFAR-10 with translations + flips (Table 1)",
        model="nin_cifar10",
        # The paper does not state the translation range; +-4 px (pad 4 + random 32x32 crop) is the
        # common choice. Deviation from paper: we translate the raw pixels before GCN + ZCA (the batched
        # pipeline augments uint8 images), where cuda-convnet shifted the already whitened images.
        translate=4,
        flip=True,
        paper_error=8.81,
        paper_ref="Table 1, NIN + Dropout + Augmentation",
        **_CIFAR,
    ),
    40,
)
_modern(
    _paper(
        "cifar100",
        "NIN on CIFAR-100, no augmentation (Table 2)",
        model="nin_cifar100",
        **{**_CIFAR, "dataset": "cifar100"},
        lr=0.02,  # author's CIFAR-100 files: lr 0.02 (biases 0.04), weight decay 5e-4
        weight_decay=5e-4,
        paper_error=35.68,
        paper_ref="Table 2, NIN + Dropout",
    ),
    60,
)
_modern(
    _paper(
        "svhn",
        "NIN on SVHN, train + extra minus the maxout validation split (Table 3)",
        model="nin_svhn",
        dataset="svhn",
        preprocess="gcn_lcn",
        epochs=22,  # 598,388 images: 4,674 steps per epoch, ~103k steps
        plateau_patience=2,
        paper_error=2.35,
        paper_ref="Table 3, NIN + Dropout",
    ),
    6,
)
_modern(
    _paper(
        "mnist",
        "NIN on MNIST, no augmentation (Table 4)",
        model="nin_mnist",
        dataset="mnist",
        # The paper states no MNIST preprocessing; pixels in [0, 1] as pylearn2's MNIST loader gives them.
        preprocess="scale",
        epochs=220,  # 468 steps per epoch, ~103k steps
        plateau_patience=10,
        paper_error=0.47,
        paper_ref="Table 4, NIN + Dropout",
    ),
    15,
)
_modern(
    _paper(
        "cifar10_fc",
        "Table 5: CIFAR-10 mlpconv layers + a fully connected head",
        model="nin_cifar10_fc",
        paper_error=11.59,
        paper_ref="Table 5, mlpconv + Fully Connected",
        **_CIFAR,
    ),
    40,
)
_modern(
    _paper(
        "cifar10_fc_dropout",
        "Table 5: CIFAR-10 mlpconv layers + dropout + a fully connected head",
        model="nin_cifar10_fc_dropout",
        paper_error=10.88,
        paper_ref="Table 5, mlpconv + Fully Connected + Dropout",
        **_CIFAR,
    ),
    40,
)
# §4.6: global average pooling as a regularizer on a conventional CNN. The paper's numbers are for Hinton et al.'s
# CNN (three conv layers and a locally connected layer, see nin.models.ablations), which nin does not rebuild, so
# the gap of these rows compares the effect of the head more than the absolute error.
for _name, _model, _what, _error, _ref in (
    ("cifar10_cnn_fc", "cnn_cifar10_fc", "an FC head", 17.56, "§4.6, CNN"),
    ("cifar10_cnn_fc_dropout", "cnn_cifar10_fc_dropout", "dropout + an FC head", 15.99, "§4.6, CNN + Dropout"),
    ("cifar10_cnn_gap", "cnn_cifar10_gap", "a GAP head", 16.46, "§4.6, CNN + Global Average Pooling"),
):
    _modern(
        _paper(
            _name,
            f"§4.6: a conventional 3-conv CNN on CIFAR-10 with {_what}",
            model=_model,
            paper_error=_error,
            paper_ref=_ref,
            **_CIFAR,
        ),
        40,
    )

# Fashion-MNIST is not in the paper: the MNIST row's net and recipe on a harder 28x28 set (the data Debian
# packages as dataset-fashion-mnist, so it can be trained on machines that cannot download).
_modern(
    _paper(
        "fashion_mnist",
        "NIN-MNIST net on Fashion-MNIST (not in the paper)",
        model="nin_mnist",
        dataset="fashion_mnist",
        preprocess="scale",
        epochs=220,
        plateau_patience=10,
    ),
    20,
    translate=2,
    flip=True,  # clothes, unlike digits, keep their class when mirrored
    # The MNIST widths plateau near 93.6% here (one-cycle, 6-20 epochs, measured on a GPU); the CIFAR-10
    # net's widths (5x5 192-160-96, 5x5 192-192-192, 3x3 192-192-10 on 1x28x28) with dropout 0.3 reached
    # 94.0% in 20 epochs. The paper row `fashion_mnist` keeps the MNIST net.
    model="nin_cifar10",
    dropout=0.3,
    description="NIN-CIFAR-10 widths on Fashion-MNIST (not in the paper) — modern recipe (mean/std, BN, He init, "
    "one-cycle)",
)
