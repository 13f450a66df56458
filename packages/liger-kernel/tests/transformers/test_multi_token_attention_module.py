"""LigerMultiTokenAttention and liger_multi_token_attention against the same
computation built from torch.nn.Conv2d (forward and every gradient)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from liger_kernel.transformers import LigerMultiTokenAttention
from liger_kernel.transformers import functional as LF

TOL = dict(rtol=1e-5, atol=1e-5)


def stock(conv: nn.Conv2d, scores: torch.Tensor) -> torch.Tensor:
    """mask_0(conv(softmax(mask_-inf(scores)))) with a stock Conv2d."""
    length = scores.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    out = conv(torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1))
    return out * torch.ones(out.shape[-1], out.shape[-1], dtype=torch.bool).tril()


@pytest.mark.parametrize(
    ("kernel_size", "padding", "dilation", "groups", "bias"),
    [(3, 1, 1, 1, True), (3, 2, 2, 2, False), (1, 0, 1, 4, True)],
)
def test_module_matches_conv2d(kernel_size, padding, dilation, groups, bias):
    torch.manual_seed(0)
    module = LigerMultiTokenAttention(4, 4, kernel_size, padding=padding, dilation=dilation, groups=groups, bias=bias)
    conv = nn.Conv2d(4, 4, kernel_size, padding=padding, dilation=dilation, groups=groups, bias=bias)
    conv.load_state_dict(module.state_dict())
    scores = torch.randn(2, 4, 10, 10)
    ours_in, stock_in = scores.clone().requires_grad_(), scores.clone().requires_grad_()
    ours, expected = module(ours_in), stock(conv, stock_in)
    torch.testing.assert_close(ours, expected, **TOL)
    grad = torch.randn_like(ours)
    ours.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(ours_in.grad, stock_in.grad, **TOL)
    torch.testing.assert_close(module.weight.grad, conv.weight.grad, **TOL)
    if bias:
        torch.testing.assert_close(module.bias.grad, conv.bias.grad, **TOL)


def test_functional_matches_module():
    torch.manual_seed(1)
    module = LigerMultiTokenAttention(2, 3, 3, padding=1, sparse=True)
    scores = torch.randn(1, 2, 8, 8)
    expected = module(scores)
    got = LF.liger_multi_token_attention(scores, module.weight, module.bias, 1, 1, 1, 1, True)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert bool((got[..., ~torch.ones(8, 8, dtype=torch.bool).tril()] == 0).all())


def test_module_refuses_groups_that_do_not_divide():
    with pytest.raises(ValueError, match="groups"):
        LigerMultiTokenAttention(4, 6, 3, groups=4)
