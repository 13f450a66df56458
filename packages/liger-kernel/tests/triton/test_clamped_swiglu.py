"""The clamped SwiGLU kernels against GPT-OSS's gate in float64."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from liger_kernel.dispatch import dispatcher
from liger_kernel.triton.clamped_swiglu import ClampedSwiGLUFunction, clamped_swiglu_backward, clamped_swiglu_forward


def gpt_oss_gate(x: torch.Tensor, alpha: float, limit: float) -> torch.Tensor:
    """GptOssExperts._apply_gate's math (Transformers 5), written out."""
    gate = x[..., ::2].clamp(max=limit)
    up = x[..., 1::2].clamp(min=-limit, max=limit)
    return (up + 1) * gate * torch.sigmoid(gate * alpha)


def leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("alpha,limit", [(1.702, 7.0), (1.0, 0.75)])
def test_matches_float64(profile, assert_close, dtype, alpha, limit):
    torch.manual_seed(0)
    # 2 * 3 * 23 outputs: not a multiple of any tile; values on both sides of both clamps
    x = (torch.randn(2, 3, 46) * 2 * limit).to(dtype)
    x[0, 0, :4] = torch.tensor([limit, -limit, -limit, limit])  # on the bounds: the gradient passes
    dc = torch.randn(2, 3, 23, dtype=dtype)
    xk = leaf(x)
    c = ClampedSwiGLUFunction.apply(xk, alpha, limit)
    c.backward(dc)
    x64 = leaf(x.double())
    gpt_oss_gate(x64, alpha, limit).backward(dc.double())
    assert c.dtype == dtype and c.shape == (2, 3, 23)
    assert_close(c, gpt_oss_gate(x.double(), alpha, limit), dtype, scale=2)
    assert_close(xk.grad, x64.grad, dtype, scale=2)
    # outside the clamps the gradient is exactly zero, as torch's clamp gives
    cut = torch.stack((x[..., ::2] > limit, x[..., 1::2].abs() > limit), dim=-1).flatten(-2)
    assert cut.any() and (xk.grad[cut] == 0).all() and (x64.grad[cut] == 0).all()


def test_capped_grid_walks_every_tile(profile, assert_close, monkeypatch):
    """Fewer programs than tiles: each program strides over several."""
    capped = dataclasses.replace(profile, max_grid=2)
    monkeypatch.setattr(dispatcher, "profile", lambda device: capped)
    torch.manual_seed(1)
    x = leaf(torch.randn(9, 2 * 37) * 10)
    dc = torch.randn(9, 37)
    ClampedSwiGLUFunction.apply(x, 1.702, 7.0).backward(dc)
    x64 = leaf(x.double())
    gpt_oss_gate(x64, 1.702, 7.0).backward(dc.double())
    assert_close(x.grad, x64.grad, torch.float32)


def test_gradient_over_a_non_leaf_input_moves_its_version(profile, assert_close):
    """dx is written over a non-leaf x (the projection's output): the gradient
    reaching the leaf is right, and an op that saved x for its own backward
    raises instead of reading the gradient."""
    torch.manual_seed(2)
    w = leaf(torch.randn(6, 20) * 3)
    projection = w * 1.0
    c = ClampedSwiGLUFunction.apply(projection, 1.702, 7.0)
    dc = torch.randn(6, 10)
    version = projection._version
    c.backward(dc)
    assert projection._version > version
    w64 = leaf(w.double())
    gpt_oss_gate(w64 * 1.0, 1.702, 7.0).backward(dc.double())
    assert_close(w.grad, w64.grad, torch.float32)

    squared = w * 1.0
    # the product is recorded first, so its backward runs after the gate's has written over x
    product = (squared * squared).sum()
    both = product + ClampedSwiGLUFunction.apply(squared, 1.702, 7.0).sum()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        both.backward()


def test_leaf_input_is_left_unchanged(profile):
    x = leaf(torch.randn(4, 12) * 8)
    before = x.detach().clone()
    ClampedSwiGLUFunction.apply(x, 1.702, 7.0).sum().backward()
    assert torch.equal(x.detach(), before)


def test_a_sizer_sizes_both_launches(assert_close):
    """A backend's sizer (the NPU planner) picks grid and block in place of the profile's gate tile."""
    asked = []

    def sizer(kernel, n_out, dtype, device):
        asked.append((kernel.__name__, n_out, dtype))
        return 2, 64  # two programs striding over 64-output tiles

    class Ctx:
        needs_input_grad = (True, False, False)
        next_functions = ()

        def save_for_backward(self, *t):
            self.saved_tensors = t

    ctx = Ctx()
    x = torch.randn(3, 2 * 100) * 8
    c = clamped_swiglu_forward(ctx, x, 1.702, 7.0, sizer=sizer)
    dx, _, _ = clamped_swiglu_backward(ctx, torch.ones_like(c))
    assert asked == [
        ("_clamped_swiglu_forward_kernel", 300, torch.float32),
        ("_clamped_swiglu_backward_kernel", 300, torch.float32),
    ]
    x64 = leaf(x.double())
    gpt_oss_gate(x64, 1.702, 7.0).sum().backward()
    assert_close(c, gpt_oss_gate(x.double(), 1.702, 7.0), torch.float32)
    assert_close(dx, x64.grad, torch.float32)
