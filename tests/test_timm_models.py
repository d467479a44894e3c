"""timm's model checks (the ones of its tests/test_models.py that apply to a CNN classifier), run over every
registered NIN model through ``timm.create_model``."""

import copy

import pytest
import torch

timm = pytest.importorskip(
    "timm", reason="timm is not installed in this venv: `make test-timm` runs these in .venv-timm"
)

import nin  # noqa: E402  (registers the NIN models in timm)
from nin.models import list_models  # noqa: E402

NAMES = list_models()
with torch.device("meta"):  # shapes only, no memory
    _META = {n: nin.models.build_model(n) for n in NAMES}
GAP_NAMES = [n for n in NAMES if getattr(_META[n], "has_class_maps", True)]
# Nets whose classifier commutes with the pool: a 1x1 class-map layer or an FC layer (not cnn_cifar10_gap's 3x3).
LINEAR_HEAD_NAMES = [n for n in NAMES if getattr(_META[n].get_classifier(), "kernel_size", (1, 1)) == (1, 1)]


def _input(model, batch=1, target=None):
    c, h, w = model.pretrained_cfg["input_size"]
    if target and not model.pretrained_cfg["fixed_input_size"]:
        h, w = min(h, target), min(w, target)
    return torch.randn(batch, c, h, w)


def test_every_nin_model_is_in_timm():
    assert set(timm.list_models("nin*")) | set(timm.list_models("cnn*")) == set(NAMES)
    for name in NAMES:
        assert timm.is_model(name)


@pytest.mark.parametrize("name", NAMES)
def test_forward(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    with torch.no_grad():
        out = model(_input(model))
    assert out.shape == (1, model.num_classes)
    assert not torch.isnan(out).any()


@pytest.mark.parametrize("name", NAMES)
def test_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=42, init="kaiming").train()
    out = model(_input(model, batch=2, target=96))
    assert out.shape == (2, 42) and not torch.isnan(out).any()
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert sum(p.grad.numel() for p in model.parameters()) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_default_cfg_matches_the_model(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    cfg = model.pretrained_cfg
    assert model.default_cfg is cfg
    for key in (
        "input_size",
        "pool_size",
        "mean",
        "std",
        "num_classes",
        "first_conv",
        "classifier",
        "interpolation",
        "crop_pct",
        "architecture",
    ):
        assert cfg.get(key) is not None, key
    assert cfg["architecture"] == name and cfg["num_classes"] == model.num_classes
    c = cfg["input_size"][0]
    assert len(cfg["mean"]) == len(cfg["std"]) == c
    state = model.state_dict()
    assert cfg["classifier"] + ".weight" in state
    assert model.get_submodule(cfg["classifier"]) is model.get_classifier()
    assert model.get_submodule(cfg["first_conv"]).in_channels == c

    x = _input(model, batch=2)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)  # unpooled
        pre = model.forward_head(feats, pre_logits=True)
        torch.testing.assert_close(model.forward_head(feats), logits, rtol=0, atol=0)
    assert feats.shape == (2, model.num_features, *cfg["pool_size"])
    assert pre.shape == (2, model.head_hidden_size)

    model.reset_classifier(0)
    assert model.num_classes == 0 and model.get_classifier().__class__ is torch.nn.Identity
    with torch.no_grad():
        emb = model(x)
    assert emb.shape == (2, model.head_hidden_size)

    model.reset_classifier(0, "")  # no pooling: the maps
    with torch.no_grad():
        maps = model(x)
    assert maps.ndim == 4 and tuple(maps.shape[-2:]) == tuple(cfg["pool_size"])

    model.reset_classifier(7, cfg.get("global_pool") or ("avg" if name in GAP_NAMES else "flatten"))
    with torch.no_grad():
        assert model(x).shape == (2, 7)
    with pytest.raises(ValueError, match="global_pool"):
        model.reset_classifier(3, "max")


@pytest.mark.parametrize("name", LINEAR_HEAD_NAMES)
def test_pre_logits_are_what_the_classifier_reads(name):
    """reset_classifier(0) leaves the pooled features the classifier maps to the logits (exactly, for a 1x1
    class-map layer without the final ReLU: the conv and the average pool commute)."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, final_relu=False, dropout=0.0).eval()
    head = copy.deepcopy(model.get_classifier())
    x = _input(model, batch=3)
    with torch.no_grad():
        logits = model(x)
        model.reset_classifier(0)
        emb = model(x)
        by_hand = (
            head(emb) if name not in GAP_NAMES else torch.nn.functional.linear(emb, head.weight.flatten(1), head.bias)
        )
    torch.testing.assert_close(by_hand, logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_features_only(name):
    torch.manual_seed(0)
    plain = timm.create_model(name, pretrained=False).eval()
    feat = timm.create_model(name, pretrained=False, features_only=True).eval()
    channels, reductions = feat.feature_info.channels(), feat.feature_info.reduction()
    assert len(channels) == len(plain.feature_info) >= 3
    assert reductions == sorted(reductions)
    x = _input(plain, batch=2)
    with torch.no_grad():
        outs = feat(x)
    assert [o.shape[1] for o in outs] == channels
    sizes = [o.shape[-1] for o in outs]
    assert sizes == sorted(sizes, reverse=True) and tuple(outs[-1].shape[-2:]) == tuple(
        plain.pretrained_cfg["pool_size"]
    )
    assert all(o.shape[0] == 2 and not torch.isnan(o).any() for o in outs)
    if name in GAP_NAMES:  # the last block's output is the class maps, with the same weights
        feat.load_state_dict(plain.state_dict(), strict=False)
        with torch.no_grad():
            torch.testing.assert_close(feat(x)[-1], plain.forward_features(x))
    sub = timm.create_model(name, pretrained=False, features_only=True, out_indices=(1,))
    assert sub.feature_info.channels() == channels[1:2]


@pytest.mark.parametrize("name", ["nin_cifar10", "nin_mnist", "nin_cifar10_fc", "cnn_cifar10_gap"])
def test_fx_feature_extraction(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, features_only=True, feature_cls="fx").eval()
    with torch.no_grad():
        outs = model(_input(model, batch=1))
    assert [o.shape[1] for o in outs] == model.feature_info.channels()
    from timm.models import get_graph_node_names

    _, eval_nodes = get_graph_node_names(timm.create_model(name).eval())
    assert any(n.endswith(timm.create_model(name).pretrained_cfg["classifier"].split(".")[-1]) for n in eval_nodes)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")  # TorchScript's deprecation notes
@pytest.mark.parametrize("name", GAP_NAMES)
def test_torchscript_without_dropout(name):
    """torch.jit.script compiles the GAP nets built with dropout=0 (nin's fast dropout is an autograd.Function,
    which TorchScript cannot compile; docs/timm.md)."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, dropout=0.0).eval()
    x = _input(model, target=128)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


def test_in_chans_and_num_classes_overrides():
    model = timm.create_model("nin_cifar10", in_chans=1, num_classes=5)
    assert model.get_submodule(model.pretrained_cfg["first_conv"]).in_channels == 1
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 5)
    assert timm.create_model("nin_mnist", num_classes=0)(torch.randn(2, 1, 28, 28)).shape == (2, 96)
    with pytest.raises(ValueError, match="takes"):
        timm.create_model("nin_cifar10_fc", img_size=(64, 64))


def test_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = timm.create_model("nin_mnist", dropout=0.0, init="kaiming").train()
    x = torch.randn(4, 1, 28, 28)
    model(x).square().sum().backward()
    expect = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).square().sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expect[n], msg=n)


@pytest.mark.parametrize("name", ["nin_cifar10", "nin_imagenet", "nin_cifar10_fc"])
def test_group_matcher_covers_every_parameter(name):
    from timm.models import group_parameters

    model = timm.create_model(name)
    groups = group_parameters(model, model.group_matcher())
    grouped = [p for names in groups.values() for p in names]
    assert sorted(grouped) == sorted(n for n, _ in model.named_parameters())
    assert len(groups) >= 3


@pytest.mark.parametrize("name", NAMES)
def test_feature_info_after_the_classifier_is_removed(name):
    model = timm.create_model(name)
    model.reset_classifier(0)
    info = model.feature_info
    assert info[-1]["num_chs"] == model.num_features
    with torch.no_grad():
        out = model.eval()(_input(model))
    assert out.shape == (1, model.head_hidden_size)
