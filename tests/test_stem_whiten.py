"""The whitened first convolution: its responses are decorrelated with unit variance, and it does not train."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _tiny import CPU32, interrupted_then_resumed, tiny_cfg
from nin.errors import ConfigError
from nin.models import build_model
from nin.train import train
from nin.train.checkpoint import build_from_checkpoint, load_checkpoint
from nin.train.config import validate
from nin.train.stem_whiten import IdentityNorm, fix_stem_norm, patch_whitening, whiten_stem


def _images(n=400, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, size, size, generator=g)
    # correlated pixels: a smoothed field, so the raw patches are far from white
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def test_whitened_responses_have_identity_covariance():
    x = _images()
    conv = nn.Conv2d(1, 8, 3, bias=False)
    assert whiten_stem(conv, x, eps=1e-8) == 8
    y = conv(x)[:, 0::2]  # the positive filter of each pair
    flat = y.permute(0, 2, 3, 1).reshape(-1, 4).double()
    cov = torch.cov(flat.T)
    assert torch.allclose(cov, torch.eye(4, dtype=cov.dtype), atol=0.05)
    raw = torch.cov(F.unfold(x, 3).transpose(1, 2).reshape(-1, 9).T.double())
    assert raw[0, 1] / raw[0, 0] > 0.3  # the patches were correlated before


def test_the_covariance_sample_is_every_step_th_patch_however_the_images_are_chunked():
    x = _images(n=50)
    patches = F.unfold(x, 3).transpose(1, 2).reshape(-1, 9)  # all of them at once: 50 x 196 patches
    # chunks of 9 and 25 images whose patch counts are not multiples of the step (10, 3), and one chunk
    for max_patches in (900, 2_500, 10**6):
        step = max(1, patches.shape[0] // max_patches)
        p = patches[::step].double()
        p = p - p.mean(0)
        want = torch.linalg.eigvalsh(p.T @ p / p.shape[0]).flip(0)
        values, _ = patch_whitening(x, (3, 3), eps=0.0, max_patches=max_patches)
        torch.testing.assert_close(values, want.clamp_min(0))


def test_pairs_are_negatives_and_the_weight_is_frozen():
    conv = nn.Conv2d(1, 6, 3, bias=False)
    whiten_stem(conv, _images())
    assert torch.equal(conv.weight[1], -conv.weight[0])
    assert not conv.weight.requires_grad
    out = conv(_images(4)).relu().sum()
    assert not out.requires_grad  # nothing upstream of the frozen stem trains


def test_a_wider_layer_keeps_its_remaining_filters():
    conv = nn.Conv2d(1, 24, 3, bias=False)  # 9 patch dimensions: 18 whitening filters, 6 left as they were
    before = conv.weight.detach().clone()
    assert whiten_stem(conv, _images(), freeze=False) == 18
    assert torch.equal(conv.weight[18:], before[18:])
    assert not torch.equal(conv.weight[:18], before[:18])
    assert conv.weight.requires_grad


def test_grouped_convolution_is_refused():
    with pytest.raises(ValueError, match="ungrouped"):
        whiten_stem(nn.Conv2d(2, 4, 3, groups=2), torch.randn(2, 2, 8, 8))


# --- in a training run (`--set whiten_stem=true`) ---------------------------------------------------------------


def _stem_and_rest(model):
    stem = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    rest = {n: p.detach().clone() for n, p in model.named_parameters() if p is not stem.weight}
    return stem, rest


def test_a_run_whitens_the_stem_and_trains_everything_else(tmp_path, tiny_data):
    seen = {}

    def record(p) -> None:
        stem, rest = _stem_and_rest(p.model)
        seen["stem"], seen["w0"], seen["rest0"], seen["model"] = stem, stem.weight.detach().clone(), rest, p.model
        seen["optimised"] = {id(q) for g in p.optimizer.param_groups for q in g["params"]}

    cfg = tiny_cfg(epochs=2, whiten_stem=True)
    train(cfg, out_dir=tmp_path, progress=False, data=tiny_data, runtime=CPU32, on_start=record)
    stem = seen["stem"]
    assert id(stem.weight) not in seen["optimised"]
    assert torch.equal(stem.weight, seen["w0"])  # frozen through training
    _, rest = _stem_and_rest(seen["model"])
    assert all(not torch.equal(rest[n], seen["rest0"][n]) for n in rest if not n.endswith("running_var"))
    pairs = min(stem.out_channels // 2, stem.weight[0].numel())  # one pair per patch dimension, at most
    w = seen["w0"].flatten(1)[: 2 * pairs]
    assert torch.allclose(w[1::2], -w[0::2])  # the whitening pairs, not the random init


def test_resume_with_a_whitened_stem_equals_an_uninterrupted_run(tmp_path, tiny_data):
    cfg = tiny_cfg(epochs=3, whiten_stem=True)
    ref = train(cfg, out_dir=tmp_path / "a", progress=False, data=tiny_data, runtime=CPU32)
    got = interrupted_then_resumed(cfg, tmp_path / "b", tiny_data, at_step=8)
    assert got.final["loss"] == ref.final["loss"]
    assert got.final["error_pct"] == ref.final["error_pct"]


# --- the batch norm after the whitened stem fixed at the identity (`--set freeze_stem_bn=true`) -----------------


def test_identity_norm_passes_the_batch_and_a_plain_batch_norm_loaded_from_it_is_the_identity():
    fixed = IdentityNorm(6).train()
    x = torch.randn(4, 6, 5, 5) * 3 + 2  # far from zero mean / unit variance: a real BN would change it
    assert torch.equal(fixed(x), x)
    assert not any(p.requires_grad for p in fixed.parameters())
    plain = nn.BatchNorm2d(6)
    plain.load_state_dict(fixed.state_dict())
    torch.testing.assert_close(plain.eval()(x), x)


def test_fix_stem_norm_replaces_the_norm_after_the_first_conv_and_keeps_the_state_keys():
    model = build_model("nin_mnist_half", num_classes=10, in_channels=1, batch_norm=True)
    keys = list(model.state_dict())
    fixed = fix_stem_norm(model)
    assert model.mlpconv1.conv1_bn is fixed
    assert isinstance(model.mlpconv1.cccp1_bn, nn.BatchNorm2d) and not isinstance(model.mlpconv1.cccp1_bn, IdentityNorm)
    assert list(model.state_dict()) == keys
    with pytest.raises(ValueError, match="not followed by a batch norm"):
        fix_stem_norm(build_model("nin_mnist_half", num_classes=10, in_channels=1, batch_norm=False))


def test_freeze_stem_bn_needs_a_whitened_stem_with_batch_norm():
    with pytest.raises(ConfigError, match="whiten_stem=true"):
        validate(tiny_cfg(freeze_stem_bn=True))
    with pytest.raises(ConfigError, match="batch_norm=true"):
        validate(tiny_cfg(freeze_stem_bn=True, whiten_stem=True, batch_norm=False))


def test_a_run_with_a_fixed_stem_norm_differentiates_nothing_below_the_stem_and_loads_as_trained(tmp_path, tiny_data):
    seen = {}

    def record(p) -> None:
        seen["bn"], seen["model"] = p.model.mlpconv1.conv1_bn, p.model
        seen["optimised"] = {id(q) for g in p.optimizer.param_groups for q in g["params"]}
        p.model.mlpconv1.conv1_relu.register_forward_hook(
            lambda m, i, out: seen.setdefault("relu_out_requires_grad", set()).add(out.requires_grad)
        )
        p.model.mlpconv1.cccp1.register_forward_hook(
            lambda m, i, out: seen.setdefault("cccp1_out_requires_grad", set()).add(out.requires_grad)
        )

    cfg = tiny_cfg(epochs=2, whiten_stem=True, freeze_stem_bn=True)
    result = train(cfg, out_dir=tmp_path, progress=False, data=tiny_data, runtime=CPU32, on_start=record)
    bn = seen["bn"]
    assert isinstance(bn, IdentityNorm)
    assert not {id(bn.weight), id(bn.bias)} & seen["optimised"]
    assert seen["relu_out_requires_grad"] == {False}  # nothing below cccp1 is differentiated
    assert seen["cccp1_out_requires_grad"] == {True}  # cccp1 and everything after it still trains
    ckpt = load_checkpoint(result.run_dir / "last.pt")
    plain = build_from_checkpoint(ckpt)  # a plain BatchNorm2d where training had the fixed one
    assert type(plain.mlpconv1.conv1_bn) is nn.BatchNorm2d
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
    x = torch.randn(8, *tiny_data[1].shape)
    with torch.no_grad():  # the checkpoint answers as the trained model does
        torch.testing.assert_close(plain(x), seen["model"].eval()(x))


def test_resume_with_a_fixed_stem_norm_equals_an_uninterrupted_run(tmp_path, tiny_data):
    cfg = tiny_cfg(epochs=3, whiten_stem=True, freeze_stem_bn=True)
    ref = train(cfg, out_dir=tmp_path / "a", progress=False, data=tiny_data, runtime=CPU32)
    got = interrupted_then_resumed(cfg, tmp_path / "b", tiny_data, at_step=8)
    assert got.final["loss"] == ref.final["loss"]
    assert got.final["error_pct"] == ref.final["error_pct"]
