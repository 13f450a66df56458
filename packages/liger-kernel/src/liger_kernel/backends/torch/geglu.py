"""GEGLU gate in pure PyTorch (math: :mod:`liger_kernel.ops.geglu`)."""

from __future__ import annotations

import math
from typing import Any

import torch

from liger_kernel.backends.torch._common import compute_dtype

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715


def _tanh_u(a: torch.Tensor) -> torch.Tensor:
    return torch.tanh(SQRT_2_OVER_PI * (a + CUBIC * a.pow(3)))


class GELUMulFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        math_dtype = compute_dtype(a, b)
        a_wide = a.to(math_dtype)
        c = 0.5 * a_wide * (1 + _tanh_u(a_wide)) * b.to(math_dtype)
        ctx.save_for_backward(a, b)
        return c.to(a.dtype)

    @staticmethod
    def backward(ctx: Any, dc: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        a, b = ctx.saved_tensors
        math_dtype = compute_dtype(a, b)
        a_wide, dc_wide = a.to(math_dtype), dc.to(math_dtype)
        t = _tanh_u(a_wide)
        da = db = None
        if ctx.needs_input_grad[0]:
            slope = 0.5 * (1 + t) + 0.5 * a_wide * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * CUBIC * a_wide * a_wide)
            da = (dc_wide * b.to(math_dtype) * slope).to(a.dtype)
        if ctx.needs_input_grad[1]:
            db = (dc_wide * 0.5 * a_wide * (1 + t)).to(b.dtype)
        return da, db
