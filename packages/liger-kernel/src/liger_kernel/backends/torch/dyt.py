"""Dynamic Tanh over the last dimension, in pure PyTorch
(math: :mod:`liger_kernel.ops.dyt`).

Only x is saved: the backward recomputes t, and takes 1 - t**2 as
1 / cosh(alpha * x)**2, which keeps its accuracy where |t| nears 1.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import as_rows, compute_dtype


class DyTFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, alpha: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None
    ) -> torch.Tensor:
        math_dtype = compute_dtype(x, alpha, gamma, beta)
        rows = as_rows(x)
        t = torch.tanh(alpha.to(math_dtype).reshape(()) * rows.to(math_dtype))
        y = gamma.to(math_dtype) * t
        if beta is not None:
            y = y + beta.to(math_dtype)
        ctx.save_for_backward(rows, alpha, gamma)
        ctx.math_dtype, ctx.beta_dtype = math_dtype, beta.dtype if beta is not None else None
        return y.to(x.dtype).view(x.shape)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[Any, ...]:
        rows, alpha, gamma = ctx.saved_tensors
        need_dx, need_dalpha, need_dgamma, need_dbeta = ctx.needs_input_grad[:4]
        math_dtype = ctx.math_dtype
        values = rows.to(math_dtype)
        scale = alpha.to(math_dtype).reshape(())
        upstream = as_rows(dy).to(math_dtype)
        u = scale * values
        t = torch.tanh(u)
        dx = dalpha = dgamma = dbeta = None
        if need_dx or need_dalpha:
            # 1 - tanh(u)**2 as 1 / cosh(u)**2: no cancellation where |tanh(u)| nears 1
            g = upstream * gamma.to(math_dtype) * torch.cosh(u).pow(-2)
            if need_dx:
                dx = (g * scale).to(rows.dtype).view(dy.shape)
            if need_dalpha:
                dalpha = (g * values).sum().reshape(alpha.shape).to(alpha.dtype)
        if need_dgamma:
            dgamma = (upstream * t).sum(dim=0).to(gamma.dtype)
        if need_dbeta and ctx.beta_dtype is not None:
            dbeta = upstream.sum(dim=0).to(ctx.beta_dtype)
        return dx, dalpha, dgamma, dbeta
