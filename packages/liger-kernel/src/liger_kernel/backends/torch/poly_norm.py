"""PolyNorm in pure PyTorch (math: :mod:`liger_kernel.ops.poly_norm`).

Forward and backward in the compute dtype; dx is always a fresh tensor, so
the caller's dy is never touched, whatever ``in_place`` says.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import as_rows, compute_dtype

POWERS = (3, 2, 1)  # the power of x that W[0], W[1], W[2] multiply


def _normalized_powers(x: torch.Tensor, eps: float) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """(p, x**p, r_p) for the powers in W's order; ``x`` is 2-D rows."""
    square = x * x
    powers = {1: x, 2: square, 3: square * x}
    return [(p, powers[p], torch.rsqrt(powers[p].pow(2).mean(dim=-1, keepdim=True) + eps)) for p in POWERS]


class PolyNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        X: torch.Tensor,
        W: torch.Tensor,
        B: torch.Tensor,
        eps: float = 1e-6,
        in_place: bool = True,
    ) -> torch.Tensor:
        math_dtype = compute_dtype(X, W, B)
        x = as_rows(X).to(math_dtype)
        w = W.to(math_dtype)
        y = B.to(math_dtype).reshape(())
        for index, (_, power, rstd) in enumerate(_normalized_powers(x, eps)):
            y = y + w[index] * power * rstd
        ctx.save_for_backward(X, W, B)
        ctx.eps = eps
        return y.to(X.dtype).view(X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> tuple[Any, ...]:
        X, W, B = ctx.saved_tensors
        need_dx, need_dw, need_db = ctx.needs_input_grad[:3]
        math_dtype = compute_dtype(X, W, B)
        x = as_rows(X).to(math_dtype)
        dy = as_rows(dY).to(math_dtype)
        w = W.to(math_dtype)
        dx = torch.zeros_like(x) if need_dx else None
        dw = torch.zeros(3, dtype=math_dtype, device=X.device)
        for index, (p, power, rstd) in enumerate(_normalized_powers(x, ctx.eps)):
            normed = power * rstd
            if need_dw:
                dw[index] = (dy * normed).sum()
            if need_dx:
                lower = x.pow(p - 1) if p > 1 else torch.ones_like(x)
                mean_dy_n = (dy * normed).mean(dim=-1, keepdim=True)
                dx = dx + w[index] * p * lower * rstd * (dy - normed * mean_dy_n)
        dX = dx.to(X.dtype).view(X.shape) if need_dx else None
        dW = dw.to(W.dtype) if need_dw else None
        dB = dy.sum().to(B.dtype).reshape(B.shape) if need_db else None
        return dX, dW, dB, None, None
