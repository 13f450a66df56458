"""Clamped SwiGLU gate in pure PyTorch (math: :mod:`liger_kernel.ops.clamped_swiglu`).

Only x is saved; the backward recomputes the clamps and the sigmoid.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import compute_dtype


def _clamped(x: torch.Tensor, limit: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gc, uc, gate passes gradient, up passes gradient) of the interleaved x, in x's dtype."""
    g, u = x[..., 0::2], x[..., 1::2]
    return g.clamp(max=limit), u.clamp(-limit, limit), g <= limit, (u >= -limit) & (u <= limit)


class ClampedSwiGLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, alpha: float, limit: float) -> torch.Tensor:
        gc, uc, _, _ = _clamped(x.to(compute_dtype(x)), limit)
        c = (uc + 1) * gc * torch.sigmoid(alpha * gc)
        ctx.save_for_backward(x)
        ctx.alpha, ctx.limit = alpha, limit
        return c.to(x.dtype)

    @staticmethod
    def backward(ctx: Any, dc: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (x,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        math_dtype = compute_dtype(x)
        gc, uc, gate_open, up_open = _clamped(x.to(math_dtype), ctx.limit)
        dc_wide = dc.to(math_dtype)
        s = torch.sigmoid(ctx.alpha * gc)
        dg = dc_wide * (uc + 1) * s * (1 + ctx.alpha * gc * (1 - s))
        du = dc_wide * gc * s
        zero = dg.new_zeros(())
        # where, not a product: a clamped element's gradient is 0 even for a non-finite dc
        dx = torch.stack((torch.where(gate_open, dg, zero), torch.where(up_open, du, zero)), dim=-1).flatten(-2)
        return dx.to(x.dtype), None, None
