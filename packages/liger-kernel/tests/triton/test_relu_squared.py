"""Squared-ReLU kernels against a float64 formula, over one tile and a walk of several."""

from __future__ import annotations

import pytest
import torch

from liger_kernel.triton.relu_squared import ReLUSquaredFunction


def reference(x: torch.Tensor, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x64 = x.detach().double().requires_grad_()
    y64 = torch.relu(x64).square()
    y64.backward(dy.double())
    return y64, x64.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 5, 37), (4, 1100)])
def test_relu_squared_matches_float64(profile, assert_close, dtype, shape):
    torch.manual_seed(0)
    x = (torch.randn(shape) * 3).to(dtype)
    dy = torch.randn(shape).to(dtype)
    leaf = x.clone().requires_grad_()
    y = ReLUSquaredFunction.apply(leaf)
    y.backward(dy)
    y64, dx64 = reference(x, dy)
    assert y.dtype == dtype and y.shape == x.shape and leaf.grad.dtype == dtype
    assert_close(y, y64, dtype, scale=4)
    assert_close(leaf.grad, dx64, dtype, scale=4)
    # exactly zero on the non-positive side, value and slope alike
    assert torch.all(y[x <= 0] == 0) and torch.all(leaf.grad[x <= 0] == 0)


def test_non_leaf_input_takes_its_gradient_in_place(profile, assert_close):
    """A non-leaf X (a projection's output) may hold dx: the gradient reaching
    the leaf is unchanged, and autograd knows X was written."""
    torch.manual_seed(1)
    leaf = torch.randn(6, 50, requires_grad=True)
    dy = torch.randn(6, 50)
    hidden = leaf * 2.0
    version = hidden._version
    ReLUSquaredFunction.apply(hidden).backward(dy)
    _, dx64 = reference(leaf * 2.0, dy)
    assert_close(leaf.grad, 2.0 * dx64, torch.float32)
    assert hidden._version > version


def test_leaf_and_strided_inputs_are_not_written(profile, assert_close):
    torch.manual_seed(2)
    base = torch.randn(5, 18)
    leaf = base.clone().requires_grad_()
    strided = leaf[:, ::2]
    dy = torch.randn(5, 9)
    ReLUSquaredFunction.apply(strided).backward(dy)
    assert torch.equal(leaf.detach(), base)
    expected = torch.zeros(5, 18, dtype=torch.float64)
    expected[:, ::2] = reference(base[:, ::2], dy)[1]
    assert_close(leaf.grad, expected, torch.float32)


def test_empty_input(profile):
    x = torch.empty(3, 0, requires_grad=True)
    y = ReLUSquaredFunction.apply(x)
    y.backward(torch.ones_like(y))
    assert y.shape == (3, 0) and x.grad.shape == (3, 0)
