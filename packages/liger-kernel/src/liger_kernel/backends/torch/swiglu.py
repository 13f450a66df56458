"""SwiGLU gate in pure PyTorch (math: :mod:`liger_kernel.ops.swiglu`)."""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import compute_dtype


class SiLUMulFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        math_dtype = compute_dtype(a, b)
        a_wide = a.to(math_dtype)
        c = a_wide * torch.sigmoid(a_wide) * b.to(math_dtype)
        ctx.save_for_backward(a, b)
        return c.to(a.dtype)

    @staticmethod
    def backward(ctx: Any, dc: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        a, b = ctx.saved_tensors
        math_dtype = compute_dtype(a, b)
        a_wide, dc_wide = a.to(math_dtype), dc.to(math_dtype)
        s = torch.sigmoid(a_wide)
        da = db = None
        if ctx.needs_input_grad[0]:
            da = (dc_wide * b.to(math_dtype) * s * (1 + a_wide * (1 - s))).to(a.dtype)
        if ctx.needs_input_grad[1]:
            db = (dc_wide * a_wide * s).to(b.dtype)
        return da, db
