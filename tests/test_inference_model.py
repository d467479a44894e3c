"""The fused inference copy (BN folded, ReLU fused, weights cast once) answers as the model does."""

import pytest
import torch

from nin.models import build_model, list_models
from nin.models.inference import FusedConv, InferenceNet, inference_model
from nin.models.mlpconv import MLPConv

CL = torch.channels_last


def _input(name: str, batch: int = 3) -> torch.Tensor:
    shape = (3, 224, 224) if "imagenet" in name else (1, 28, 28) if "mnist" in name else (3, 32, 32)
    return torch.randn(batch, *shape)


def _trained_like(name: str, batch_norm: bool) -> torch.nn.Module:
    """A model whose BN statistics and affine parameters are far from their initial values."""
    torch.manual_seed(0)
    model = build_model(name, batch_norm=batch_norm, init="kaiming")
    if batch_norm:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 2.0)
                    m.bias.uniform_(-0.5, 0.5)
        model.train()
        with torch.no_grad():
            for _ in range(2):
                model(_input(name, 4) * 3 + 1)
    return model.eval()


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("name", [n for n in list_models() if n != "nin_imagenet"])
def test_fp32_copy_matches_the_model(name, batch_norm):
    model = _trained_like(name, batch_norm)
    fused = inference_model(model, None, CL)
    x = _input(name)
    with torch.no_grad():
        want_maps, want = model.forward_features(x), model(x)
        got_maps = fused.forward_features(x.contiguous(memory_format=CL))
        got = fused(x.contiguous(memory_format=CL))
    scale = want.abs().max().item()
    torch.testing.assert_close(got, want, atol=1e-5 * max(scale, 1.0), rtol=1e-5)
    torch.testing.assert_close(got_maps, want_maps, atol=1e-5 * max(want_maps.abs().max().item(), 1.0), rtol=1e-5)
    # every conv was replaced, every BN and ReLU removed
    blocks = [m for m in fused.modules() if isinstance(m, MLPConv)]
    assert blocks and all(isinstance(getattr(b, n), FusedConv) for b in blocks for n in b.names)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.ReLU)) for m in fused.modules())


def test_the_model_itself_is_left_alone():
    model = _trained_like("nin_mnist", True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = inference_model(model, torch.bfloat16, CL)
    assert fused.net is not model and model.training is False
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(p.dtype == torch.bfloat16 for p in fused.parameters())


def test_bf16_copy_is_close_and_returns_float32():
    """Within bf16's bound for nin_mnist's 9 convolutions (see tests/test_bf16.py for the argument)."""
    model = _trained_like("nin_mnist", True)
    fused = inference_model(model, torch.bfloat16, CL)
    x = _input("nin_mnist", 8).contiguous(memory_format=CL)
    with torch.no_grad():
        want, got = model(x), fused(x)
    assert got.dtype == torch.float32
    err = (got - want).abs().max().item()
    assert 0 < err <= 9 * 2.0**-8 * want.abs().max().item()


def test_other_modules_pass_through():
    plain = torch.nn.Linear(3, 2)
    assert inference_model(plain, torch.bfloat16, CL) is plain
    fused = inference_model(build_model("nin_mnist"), None, CL)
    assert isinstance(fused, InferenceNet) and inference_model(fused, None, CL) is fused


def test_fc_ablations_keep_their_head():
    model = _trained_like("nin_cifar10_fc_dropout", False)
    fused = inference_model(model, None, CL)
    assert fused.has_class_maps is False
    x = _input("nin_cifar10_fc_dropout")
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-5)


def test_builds_on_any_device_with_batch_norm():
    """The fold makes its tensors on the model's device (a GPU in use; the meta device here)."""
    model = build_model("nin_mnist", batch_norm=True).eval().to("meta")
    fused = inference_model(model, torch.bfloat16, CL)
    assert all(p.device.type == "meta" for p in fused.parameters())
    out = fused(torch.empty(2, 1, 28, 28, device="meta").contiguous(memory_format=CL))
    assert out.shape == (2, 10) and out.device.type == "meta"


def test_weights_changed_after_first_use_are_packed_again():
    model = _trained_like("nin_mnist", True)
    fused = inference_model(model, None, CL)
    x = _input("nin_mnist", 1).contiguous(memory_format=CL)  # a first call at batch 1, as a server warms up
    with torch.no_grad():
        before = fused(x)
        big = fused(_input("nin_mnist", 70).contiguous(memory_format=CL))  # then larger batches
        assert big.shape == (70, 10)
        for p in fused.parameters():
            p.mul_(0.5)  # in place, as load_state_dict does
        after = fused(x)
    assert not torch.allclose(after, before)
    want = fused(x.clone().requires_grad_(True)).detach()  # with autograd on: plain conv2d on the current weights
    torch.testing.assert_close(after, want, atol=1e-5, rtol=1e-5)


def test_a_used_copy_can_be_copied_and_saved(tmp_path):
    import copy

    fused = inference_model(_trained_like("nin_mnist", False), None, CL)
    x = _input("nin_mnist").contiguous(memory_format=CL)
    with torch.no_grad():
        want = fused(x)
        twin = copy.deepcopy(fused)  # the oneDNN-layout weights are not copied; the twin makes its own
        torch.testing.assert_close(twin(x), want)
    torch.save(fused.state_dict(), tmp_path / "fused.pt")


def test_gradients_reach_the_input_through_the_copy():
    """Saliency-style uses: with autograd on, the copy runs plain conv2d so the input gets its gradient."""
    fused = inference_model(_trained_like("nin_mnist", True), None, CL)
    x = _input("nin_mnist").requires_grad_(True)
    fused(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
