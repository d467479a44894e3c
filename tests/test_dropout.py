"""The paper's dropout drawn from random bits: the same distribution as nn.Dropout, its gradient, its fallbacks."""

import pytest
import torch
import torch.nn as nn

from nin.models import build_model
from nin.models.dropout import Dropout, keep_mask


def test_the_mask_is_fair_independent_and_laid_out_like_the_input():
    torch.manual_seed(0)
    x = torch.randn(16, 64, 32, 32).contiguous(memory_format=torch.channels_last)  # 1,048,576 elements
    keep = keep_mask(x)
    assert keep.dtype == torch.uint8 and keep.shape == x.shape and keep.stride() == x.stride()
    assert set(keep.unique().tolist()) == {0, 2}
    kept = (keep.flatten() > 0).double()  # in memory order: 8 consecutive elements share one random byte
    # Keep rate 1/2: the standard error of the mean of 2^20 fair draws is 0.0005; 6 of them is the bound.
    assert abs(kept.mean().item() - 0.5) < 0.003
    for j in range(8):  # every bit position of the bytes is fair
        assert abs(kept.view(-1, 8)[:, j].mean().item() - 0.5) < 0.01
    # Neighbours (within a byte and across bytes) are uncorrelated.
    corr = torch.corrcoef(torch.stack([kept[:-1], kept[1:]]))[0, 1].item()
    assert abs(corr) < 0.01


def test_an_odd_sized_input_gets_a_whole_mask():
    keep = keep_mask(torch.ones(3, 5, 7))
    assert keep.shape == (3, 5, 7) and set(keep.unique().tolist()) <= {0, 2}


def test_forward_scales_kept_values_by_two_and_backward_uses_the_same_mask():
    torch.manual_seed(1)
    x = (torch.rand(8, 16, 6, 6) + 0.5).requires_grad_()  # no zeros, so the mask can be read off the output
    out = Dropout(0.5).train()(x)
    keep = out.detach() / x.detach()
    assert set(keep.unique().tolist()) == {0.0, 2.0}
    g = torch.randn_like(out)
    out.backward(g)
    assert torch.equal(x.grad, g * keep)


def test_bf16_stays_bf16():
    x = torch.randn(4, 8, 5, 5, dtype=torch.bfloat16, requires_grad=True)
    out = Dropout(0.5).train()(x)
    out.sum().backward()
    assert out.dtype == x.grad.dtype == torch.bfloat16


def test_a_seed_gives_the_same_masks():
    x = torch.randn(2, 4, 9, 9)
    drop = Dropout(0.5).train()
    torch.manual_seed(7)
    a = drop(x)
    torch.manual_seed(7)
    assert torch.equal(a, drop(x))


def test_evaluation_is_the_identity():
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(Dropout(0.5).eval()(x), x)


@pytest.mark.parametrize(
    "make, x",
    [
        (lambda: Dropout(0.3), torch.randn(64, 64)),  # another rate
        (lambda: Dropout(0.5, inplace=True), torch.randn(64, 64)),  # in place
        (lambda: Dropout(0.5), torch.randn(64, 128)[:, ::2]),  # a strided view
    ],
)
def test_other_cases_are_nn_dropout_itself(make, x):
    drop = make().train()
    fresh = (lambda: x.clone()) if drop.inplace else (lambda: x)  # a clone of the view would be dense
    torch.manual_seed(3)
    ours = drop(fresh())
    torch.manual_seed(3)
    theirs = nn.Dropout(drop.p, inplace=drop.inplace).train()(fresh())
    assert torch.equal(ours, theirs)


def test_the_paper_nets_use_it():
    drops = [m for m in build_model("nin_cifar10").modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(isinstance(m, Dropout) and m.p == 0.5 for m in drops)
