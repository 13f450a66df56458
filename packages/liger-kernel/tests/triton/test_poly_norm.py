"""PolyNorm kernels against the PolyCom formula in float64 (one-block and walked rows)."""

from __future__ import annotations

import pytest
import torch

from liger_kernel.triton.poly_norm import PolyNormFunction

EPS = 1e-6


def reference(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    def norm(u: torch.Tensor) -> torch.Tensor:
        return u * torch.rsqrt(u.pow(2).mean(-1, keepdim=True) + EPS)

    return w[0] * norm(x**3) + w[1] * norm(x**2) + w[2] * norm(x) + b


def leaf(t: torch.Tensor, grad: bool = True) -> torch.Tensor:
    return t.detach().clone().requires_grad_(grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("in_place", [True, False])
def test_poly_norm_matches_float64(profile, assert_close, dtype, in_place):
    torch.manual_seed(0)
    x = torch.randn(5, 3, 40, dtype=dtype)
    w, b = torch.tensor([0.3, -0.6, 0.9], dtype=dtype), torch.tensor([0.25], dtype=dtype)
    dy = torch.randn(5, 3, 40, dtype=dtype)
    xk, wk, bk = leaf(x), leaf(w), leaf(b)
    y = PolyNormFunction.apply(xk, wk, bk, EPS, in_place)
    y.backward(dy.clone())
    x64, w64, b64 = leaf(x.double()), leaf(w.double()), leaf(b.double())
    y64 = reference(x64, w64, b64)
    y64.backward(dy.double())
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, y64, dtype, scale=2)
    assert_close(xk.grad, x64.grad, dtype, scale=4)
    assert_close(wk.grad, w64.grad, dtype, scale=16)
    assert_close(bk.grad, b64.grad, dtype, scale=16)


def test_poly_norm_in_place_never_writes_the_gradient(profile):
    torch.manual_seed(1)
    x = torch.randn(4, 24).requires_grad_()
    w, b = torch.tensor([0.5, 0.2, 0.3]), torch.zeros(())
    dy = torch.randn(4, 24)
    x64 = leaf(x.double())
    reference(x64, w.double(), b.double()).backward(dy.double())
    dy_kept = dy.clone()
    y = PolyNormFunction.apply(x, w, b, EPS, True)
    (grad,) = torch.autograd.grad(y, x, dy)
    torch.testing.assert_close(grad.double(), x64.grad, atol=1e-5, rtol=1e-5)
    assert grad.data_ptr() != dy.data_ptr(), "in_place=True must not write dx over the incoming gradient"
    assert torch.equal(dy, dy_kept)


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, True), (False, False, True)])
def test_poly_norm_grad_subsets_and_strided_input(profile, assert_close, needs):
    torch.manual_seed(2)
    x = torch.randn(33, 6).t()  # (6, 33), last dim strided
    w, b = torch.randn(3), torch.randn(())
    dy = torch.randn(6, 33)
    xk, wk, bk = (leaf(t, n) for t, n in zip((x, w, b), needs))
    PolyNormFunction.apply(xk, wk, bk, EPS, False).backward(dy)
    x64, w64, b64 = (leaf(t.double(), n) for t, n in zip((x, w, b), needs))
    reference(x64, w64, b64).backward(dy.double())
    for got, want, needed in zip((xk, wk, bk), (x64, w64, b64), needs):
        if needed:
            assert_close(got.grad, want.grad, torch.float32, scale=8)
        else:
            assert got.grad is None
