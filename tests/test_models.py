import pytest
import torch

from nin.models import NIN, build_model, feature_size, list_models

EXACT = {
    "nin_cifar10": 966_986,
    "nin_cifar100": 984_356,
    "nin_svhn": 1_986_026,
    "nin_mnist": 349_674,
    "nin_imagenet": 7_595_176,
    "nin_cifar10_caffe": 966_986,
    # the narrowed speed nets (nin.models.fast), as their descriptions state
    "nin_mnist_half": 88_442,
    "nin_mnist_2t": 175_290,
    "nin_mnist_3q": 197_458,
}


def _input(name, batch=2):
    if "imagenet" in name:
        return torch.randn(batch, 3, 224, 224)
    if "mnist" in name:
        return torch.randn(batch, 1, 28, 28)
    return torch.randn(batch, 3, 32, 32)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name,count", sorted(EXACT.items()))
def test_exact_parameter_counts(name, count):
    assert n_params(build_model(name)) == count


@pytest.mark.parametrize("name", list_models())
def test_shapes_and_class_maps(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = _input(name)
    logits = model(x)
    k = 1000 if "imagenet" in name else 100 if "cifar100" in name else 10
    assert logits.shape == (2, k)
    maps = model.forward_features(x)
    assert maps.ndim == 4 and maps.shape[0] == 2
    if getattr(model, "has_class_maps", True):
        expect = {"imagenet": 6, "mnist": 7}.get(next((s for s in ("imagenet", "mnist") if s in name), ""), 8)
        assert maps.shape == (2, k, expect, expect)
        torch.testing.assert_close(maps.mean(dim=(2, 3)), logits)


@pytest.mark.parametrize("name", [n for n in list_models() if n != "nin_imagenet"])
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=50, init="kaiming", batch_norm=False)
    x = _input(name, 4).requires_grad_(True)
    out = model(x)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_imagenet_net_has_6x6_maps_with_ceil_pools():
    model = build_model("nin_imagenet", dropout=0.0)
    assert feature_size(224, model.blocks) == 6
    with torch.no_grad():
        maps = model.forward_features(torch.randn(1, 3, 224, 224))
    assert maps.shape == (1, 1000, 6, 6)
    pools = [m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 3 and all(p.ceil_mode for p in pools)


def test_layer_names_follow_caffe():
    names = list(build_model("nin_cifar10").named_layers())
    assert names == ["conv1", "cccp1", "cccp2", "conv2", "cccp3", "cccp4", "conv3", "cccp5", "cccp6"]
    names = list(build_model("nin_imagenet").named_layers())
    assert names[-3:] == ["conv4_1024", "cccp7_1024", "cccp8_1024"]
    keys = build_model("nin_mnist").state_dict().keys()
    assert "mlpconv1.conv1.weight" in keys and "mlpconv3.cccp6.bias" in keys


def test_paper_init_stds_and_zero_biases():
    torch.manual_seed(0)
    layers = build_model("nin_cifar100").named_layers()
    assert layers["conv1"].weight.std().item() == pytest.approx(0.001, rel=0.1)
    assert layers["cccp1"].weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert layers["conv2"].weight.std().item() == pytest.approx(0.05, rel=0.1)
    assert all(float(m.bias.detach().abs().max()) == 0.0 for m in layers.values())


def test_options_batch_norm_final_relu_dropout():
    m = build_model("nin_mnist", batch_norm=True, final_relu=False, dropout=0.0, init="kaiming")
    assert sum(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules()) == 9
    assert not any(isinstance(x, torch.nn.Dropout) for x in m.modules())
    # no ReLU after the last cccp: class maps can be negative
    with torch.no_grad():
        maps = m.eval().forward_features(torch.randn(4, 1, 28, 28))
    assert (maps < 0).any()
    paper = build_model("nin_mnist").eval()
    with torch.no_grad():
        assert (paper.forward_features(torch.randn(4, 1, 28, 28)) >= 0).all()


def test_in_channels_and_num_classes_override():
    m = build_model("nin_cifar10", in_channels=1, num_classes=7)
    assert m(torch.randn(1, 1, 32, 32)).shape == (1, 7)


def test_registry_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match="nin_cifar10"):
        build_model("nin_cifar11")
    with pytest.raises(ValueError, match="bad options"):
        build_model("nin_mnist", widht=3)
    with pytest.raises(ValueError, match="init"):
        build_model("nin_mnist", init="xavier")


@pytest.mark.parametrize("name", ["nin_mnist", "nin_cifar10_fc", "cnn_cifar10_gap"])
def test_an_unknown_option_names_the_valid_ones(name):
    with pytest.raises(ValueError, match=r"bad options for model .*'widht'.*valid options: num_classes, in_channels"):
        build_model(name, widht=3)


def test_a_type_error_inside_a_builder_is_not_called_bad_options(monkeypatch):
    """Only a misspelt option is the caller's fault; a TypeError the builder itself raises passes through."""
    from nin.models import registry

    class Broken:
        doc = "a builder with a bug"

        def build(self, *, num_classes: int = 10):
            raise TypeError(f"bug inside the builder ({num_classes} classes)")

    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))
    monkeypatch.setattr(registry, "_DOCS", dict(registry._DOCS))
    registry.register_specs({"broken_net": Broken()})
    with pytest.raises(TypeError, match=r"bug inside the builder \(3 classes\)"):
        build_model("broken_net", num_classes=3)
    with pytest.raises(ValueError, match=r"bad options for model 'broken_net'.*valid options: num_classes"):
        build_model("broken_net", classes=3)
    with pytest.raises(RuntimeError, match="registered twice"):
        registry.register_specs({"nin_mnist": Broken()})


@pytest.mark.parametrize("name,size", [("nin_mnist", 28), ("nin_cifar10", 32), ("nin_svhn", 32)])
def test_feature_size_matches_model(name, size):
    m = build_model(name)
    assert isinstance(m, NIN)
    maps = m.forward_features(torch.randn(1, m.in_channels, size, size))
    assert maps.shape[-1] == feature_size(size, m.blocks)


def test_overfit_a_small_batch():
    torch.manual_seed(0)
    model = build_model("nin_mnist", batch_norm=True, init="kaiming", dropout=0.0)
    x = torch.randn(10, 1, 28, 28)
    y = torch.arange(10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1
    assert (model.eval()(x).argmax(1) == y).all()
