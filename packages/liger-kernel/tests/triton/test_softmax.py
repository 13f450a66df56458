"""Softmax kernels against a float64 formula, in one block and walked in blocks."""

from __future__ import annotations

import pytest
import torch

from liger_kernel.triton.softmax import SoftmaxFunction


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 5), (3, 40), (2, 3, 100)])
def test_softmax_matches_float64(profile, assert_close, dtype, shape):
    torch.manual_seed(0)
    x = (torch.randn(shape) * 3).to(dtype)
    dy = torch.randn(shape).to(dtype)
    xk = x.clone().requires_grad_()
    y = SoftmaxFunction.apply(xk)
    y.backward(dy)
    x64 = x.double().requires_grad_()
    y64 = torch.softmax(x64, dim=-1)
    y64.backward(dy.double())
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, y64, dtype, scale=2)
    assert_close(xk.grad, x64.grad, dtype, scale=2)


def test_softmax_strided_rows_and_masked_blocks(profile, assert_close):
    """Rows with a last-dimension stride, and rows whose leading blocks are all
    -inf (masked scores): the online maximum must not turn them into nan."""
    torch.manual_seed(1)
    x = torch.randn(6, 100)[:, ::2]  # last dimension strided
    x[1, :40] = -float("inf")
    x[2, 10:] = -float("inf")
    dy = torch.randn(6, 50)
    xk = x.clone().requires_grad_()
    SoftmaxFunction.apply(xk).backward(dy)
    x64 = x.double().requires_grad_()
    torch.softmax(x64, dim=-1).backward(dy.double())
    y = SoftmaxFunction.apply(x)
    assert torch.isfinite(y).all()
    assert_close(y, torch.softmax(x.double(), dim=-1), torch.float32)
    assert_close(xk.grad, x64.grad, torch.float32)
