"""LayerNorm kernels against a float64 formula."""

from __future__ import annotations

import pytest
import torch

from liger_kernel.triton.layer_norm import LayerNormFunction

EPS = 1e-5


def reference(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    rstd = torch.rsqrt((x - mean).pow(2).mean(-1, keepdim=True) + EPS)
    y = (x - mean) * rstd * w
    return y if b is None else y + b


def leaf(t: torch.Tensor, grad: bool = True) -> torch.Tensor:
    return t.detach().clone().requires_grad_(grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_matches_float64(profile, assert_close, dtype, bias):
    torch.manual_seed(0)
    # a shifted input checks that the variance is taken about the mean
    x = torch.randn(3, 5, 40, dtype=dtype) + 3
    w, b = torch.randn(40, dtype=dtype), torch.randn(40, dtype=dtype) if bias else None
    dy = torch.randn(3, 5, 40, dtype=dtype)
    xk, wk, bk = leaf(x), leaf(w), leaf(b) if bias else None
    y = LayerNormFunction.apply(xk, wk, bk, EPS)
    y.backward(dy)
    x64, w64, b64 = leaf(x.double()), leaf(w.double()), leaf(b.double()) if bias else None
    y64 = reference(x64, w64, b64)
    y64.backward(dy.double())
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, y64, dtype, scale=2)
    assert_close(xk.grad, x64.grad, dtype, scale=2)
    assert_close(wk.grad, w64.grad, dtype, scale=4)
    if bias:
        assert_close(bk.grad, b64.grad, dtype, scale=4)


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, True), (False, False, True)])
def test_layer_norm_grad_subsets_and_strided_input(profile, assert_close, needs):
    torch.manual_seed(1)
    x = torch.randn(33, 6).t()  # (6, 33), last dim strided
    w, b = torch.randn(33), torch.randn(33)
    dy = torch.randn(6, 33)
    xk, wk, bk = (leaf(t, n) for t, n in zip((x, w, b), needs))
    LayerNormFunction.apply(xk, wk, bk, EPS).backward(dy)
    x64, w64, b64 = (leaf(t.double(), n) for t, n in zip((x, w, b), needs))
    reference(x64, w64, b64).backward(dy.double())
    for got, want, needed in zip((xk, wk, bk), (x64, w64, b64), needs):
        if needed:
            assert_close(got.grad, want.grad, torch.float32, scale=4)
        else:
            assert got.grad is None
