"""DyT kernels against a float64 formula, over one column block and several."""

from __future__ import annotations

import pytest
import torch

from liger_kernel.triton.dyt import DyTFunction


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 5), (3, 40), (2, 5, 37)])
@pytest.mark.parametrize("beta", [True, False])
def test_dyt_matches_float64(profile, assert_close, dtype, shape, beta):
    torch.manual_seed(0)
    hidden = shape[-1]
    x = (torch.randn(shape) * 2).to(dtype)
    alpha = torch.tensor([0.7])
    gamma = torch.randn(hidden).to(dtype)
    b = torch.randn(hidden).to(dtype) if beta else None
    dy = torch.randn(shape).to(dtype)
    leaves = [t.clone().requires_grad_() if t is not None else None for t in (x, alpha, gamma, b)]
    y = DyTFunction.apply(*leaves)
    y.backward(dy)
    ref = [t.double().requires_grad_() if t is not None else None for t in (x, alpha, gamma, b)]
    y64 = ref[2] * torch.tanh(ref[1] * ref[0]) + (ref[3] if beta else 0)
    y64.backward(dy.double())
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, y64, dtype, scale=2)
    for got, want in zip(leaves, ref):
        if got is not None:
            assert got.grad.dtype == got.dtype
            assert_close(got.grad, want.grad, dtype, scale=max(4, want.grad.abs().max().item() * 0.5))


@pytest.mark.parametrize(
    "needs", [(True, False, False, False), (False, True, False, True), (False, False, True, False)]
)
def test_dyt_gradient_subsets(profile, assert_close, needs):
    torch.manual_seed(1)
    x, alpha, gamma, beta = torch.randn(7, 45), torch.tensor([1.3]), torch.randn(45), torch.randn(45)
    dy = torch.randn(7, 45)
    leaves = [t.clone().requires_grad_(n) for t, n in zip((x, alpha, gamma, beta), needs)]
    DyTFunction.apply(*leaves).backward(dy)
    ref = [t.double().requires_grad_(n) for t, n in zip((x, alpha, gamma, beta), needs)]
    (ref[2] * torch.tanh(ref[1] * ref[0]) + ref[3]).backward(dy.double())
    for got, want, needed in zip(leaves, ref, needs):
        if needed:
            assert_close(got.grad, want.grad, torch.float32, scale=max(4, want.grad.abs().max().item()))
        else:
            assert got.grad is None
