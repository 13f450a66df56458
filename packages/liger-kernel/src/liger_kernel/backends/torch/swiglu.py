"""SwiGLU gate in pure PyTorch (math: :mod:`liger_kernel.ops.swiglu`)."""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import compute_dtype


class SiLUMulFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, a: torch.Tensor, b: torch.Tensor, gate_multiplier: float = 1.0, down_multiplier: float = 1.0
    ) -> torch.Tensor:
        math_dtype = compute_dtype(a, b)
        u = a.to(math_dtype) * gate_multiplier
        c = u * torch.sigmoid(u) * b.to(math_dtype) * down_multiplier
        ctx.save_for_backward(a, b)
        ctx.multipliers = (gate_multiplier, down_multiplier)
        return c.to(a.dtype)

    @staticmethod
    def backward(ctx: Any, dc: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        a, b = ctx.saved_tensors
        gate_multiplier, down_multiplier = ctx.multipliers
        math_dtype = compute_dtype(a, b)
        u = a.to(math_dtype) * gate_multiplier
        dc_wide = dc.to(math_dtype) * down_multiplier
        s = torch.sigmoid(u)
        da = db = None
        if ctx.needs_input_grad[0]:
            da = (dc_wide * gate_multiplier * b.to(math_dtype) * s * (1 + u * (1 - s))).to(a.dtype)
        if ctx.needs_input_grad[1]:
            db = (dc_wide * u * s).to(b.dtype)
        return da, db, None, None
