"""RMSNorm and fused add + RMSNorm kernels against float64 formulas."""

from __future__ import annotations

import pytest
import torch

from liger_kernel.triton.fused_add_rms_norm import FusedAddRMSNormFunction
from liger_kernel.triton.rms_norm import RMSNormFunction

EPS = 1e-6


def reference(x: torch.Tensor, w: torch.Tensor | None, offset: float) -> torch.Tensor:
    rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS)
    return x * rstd if w is None else x * rstd * (offset + w)


def leaf(t: torch.Tensor, grad: bool = True) -> torch.Tensor:
    return t.detach().clone().requires_grad_(grad)


@pytest.mark.parametrize("mode", ["llama", "gemma", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_matches_float64(profile, assert_close, mode, dtype):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 40, dtype=dtype)
    w = torch.randn(40, dtype=dtype)
    dy = torch.randn(3, 5, 40, dtype=dtype)
    xk, wk = leaf(x), leaf(w)
    y = RMSNormFunction.apply(xk, wk, EPS, 1.0, mode, False)
    y.backward(dy)
    x64, w64 = leaf(x.double()), leaf(w.double())
    y64 = reference(x64, w64, 1.0)
    y64.backward(dy.double())
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, y64, dtype)
    assert_close(xk.grad, x64.grad, dtype, scale=2)
    # dW sums over 15 rows: the rounding of each term adds up
    assert_close(wk.grad, w64.grad, dtype, scale=4)


def test_rms_norm_without_weight_and_non_contiguous(profile, assert_close):
    torch.manual_seed(1)
    base = torch.randn(40, 6)
    x = base.t()  # (6, 40), last dim strided
    dy = torch.randn(6, 40)
    xk = leaf(x)
    RMSNormFunction.apply(xk, None, EPS).backward(dy.clone())  # in place by default: dy is reused below
    x64 = leaf(x.double())
    reference(x64, None, 0.0).backward(dy.double())
    assert_close(RMSNormFunction.apply(x, None, EPS), reference(x.double(), None, 0.0), torch.float32)
    assert_close(xk.grad, x64.grad, torch.float32)


def test_rms_norm_leaves_a_shared_gradient_intact(profile, assert_close):
    """Y1 + Y2 hands both norms one gradient tensor: in_place=False must not spoil it."""
    in_place = False
    torch.manual_seed(2)
    x1, x2 = leaf(torch.randn(4, 24)), leaf(torch.randn(4, 24))
    w = leaf(torch.randn(24))
    dy = torch.randn(4, 24)
    dy_kept = dy.clone()
    y1 = RMSNormFunction.apply(x1, w, EPS, 0.0, "llama", in_place)
    y2 = RMSNormFunction.apply(x2, w, EPS, 0.0, "llama", in_place)
    (y1 + y2).backward(dy)
    refs = [leaf(t.double()) for t in (x1, x2, w)]
    (reference(refs[0], refs[2], 0.0) + reference(refs[1], refs[2], 0.0)).backward(dy.double())
    assert torch.equal(dy, dy_kept)
    assert_close(x1.grad, refs[0].grad, torch.float32)
    assert_close(x2.grad, refs[1].grad, torch.float32)
    assert_close(w.grad, refs[2].grad, torch.float32, scale=4)


@pytest.mark.parametrize("shape", [(5, 24), (2, 3, 24)])
@pytest.mark.parametrize("in_place", [True, False])
def test_rms_norm_never_writes_dy(profile, assert_close, shape, in_place):
    """Whatever in_place says, dX gets its own buffer and dY is kept: dY may be
    the caller's tensor or one autograd also hands to another branch."""
    torch.manual_seed(6)
    x, w = leaf(torch.randn(shape)), leaf(torch.randn(24))
    dy = torch.randn(shape)
    dy_kept = dy.clone()
    dx, dw = torch.autograd.grad(RMSNormFunction.apply(x, w, EPS, 0.0, "llama", in_place), (x, w), dy)
    refs = [leaf(t.double()) for t in (x, w)]
    reference(refs[0], refs[1], 0.0).backward(dy_kept.double())
    assert_close(dx, refs[0].grad, torch.float32)
    assert_close(dw, refs[1].grad, torch.float32, scale=4)
    assert dx.data_ptr() != dy.data_ptr()
    assert torch.equal(dy, dy_kept)


def test_rms_norm_only_weight_grad(profile, assert_close):
    torch.manual_seed(3)
    x = torch.randn(7, 33)
    w = leaf(torch.randn(33))
    dy = torch.randn(7, 33)
    RMSNormFunction.apply(x, w, EPS, 0.0, "gemma").backward(dy)
    w64 = leaf(w.double())
    reference(x.double(), w64, 0.0).backward(dy.double())
    assert_close(w.grad, w64.grad, torch.float32, scale=4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("in_place", [False, True])
def test_fused_add_rms_norm_matches_float64(profile, assert_close, dtype, in_place):
    torch.manual_seed(4)
    x, r = torch.randn(2, 3, 20, dtype=dtype), torch.randn(2, 3, 20, dtype=dtype)
    w = torch.randn(20, dtype=dtype)
    dy, ds = torch.randn(2, 3, 20, dtype=dtype), torch.randn(2, 3, 20, dtype=dtype)
    xk, rk, wk = leaf(x), leaf(r), leaf(w)
    y, s = FusedAddRMSNormFunction.apply(xk, rk, wk, EPS, 0.0, "llama", in_place)
    torch.autograd.backward((y, s), (dy.clone(), ds))
    x64, r64, w64 = leaf(x.double()), leaf(r.double()), leaf(w.double())
    s64 = x64 + r64
    y64 = reference(s64, w64, 0.0)
    torch.autograd.backward((y64, s64), (dy.double(), ds.double()))
    assert_close(s, s64, dtype)
    assert_close(y, y64, dtype, scale=2)
    assert_close(xk.grad, x64.grad, dtype, scale=2)
    assert_close(rk.grad, r64.grad, dtype, scale=2)
    assert_close(wk.grad, w64.grad, dtype, scale=4)


@pytest.mark.parametrize("used", ["y", "s"])
def test_fused_add_rms_norm_with_one_output_unused(profile, assert_close, used):
    torch.manual_seed(5)
    x, r, w = leaf(torch.randn(3, 20)), leaf(torch.randn(3, 20)), leaf(torch.randn(20))
    grad = torch.randn(3, 20)
    y, s = FusedAddRMSNormFunction.apply(x, r, w, EPS)
    (y if used == "y" else s).backward(grad)
    x64, r64, w64 = leaf(x.double()), leaf(r.double()), leaf(w.double())
    s64 = x64 + r64
    y64 = reference(s64, w64, 0.0)
    (y64 if used == "y" else s64).backward(grad.double())
    assert_close(x.grad, x64.grad, torch.float32)
    assert_close(r.grad, r64.grad, torch.float32)
    if used == "y":
        assert_close(w.grad, w64.grad, torch.float32, scale=4)
    else:
        assert w.grad is None or not w.grad.any()
