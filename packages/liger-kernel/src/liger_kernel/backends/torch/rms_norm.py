"""RMSNorm in pure PyTorch (math: :mod:`liger_kernel.ops.rms_norm`).

Computes in the compute dtype (fp32, fp64 for fp64 inputs) except what
casting_mode "none" keeps in x.dtype; the backward always in the compute
dtype. dx is a fresh tensor (the caller's dy is never touched, whatever
``in_place`` says); ``row_mode`` has no meaning here.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import as_rows, compute_dtype


def rms_norm_forward(
    x: torch.Tensor, weight: torch.Tensor | None, eps: float, offset: float, casting_mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalize the rows of 2-D ``x``; returns (y in x.dtype, rstd (rows, 1) in the compute dtype)."""
    math_dtype = compute_dtype(x, weight)
    if casting_mode == "none":
        rstd = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
        y = x * rstd
        if weight is not None:
            y = y * (weight.to(x.dtype) + offset)
        return y.to(x.dtype), rstd.to(math_dtype)
    x_wide = x.to(math_dtype)
    rstd = torch.rsqrt(x_wide.pow(2).mean(dim=-1, keepdim=True) + eps)
    normed = x_wide * rstd
    if casting_mode == "llama":
        normed = normed.to(x.dtype)
        y = normed if weight is None else normed * (weight + offset)
    else:
        y = normed if weight is None else normed * (weight.to(math_dtype) + offset)
    return y.to(x.dtype), rstd


def rms_norm_backward(
    dy: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor | None,
    rstd: torch.Tensor,
    offset: float,
    casting_mode: str,
    need_dx: bool,
    need_dw: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of :func:`rms_norm_forward` in the compute dtype (2-D dx, 1-D dW)."""
    math_dtype = rstd.dtype
    dy_wide = dy.to(math_dtype)
    normed = x.to(math_dtype) * rstd
    dx = dw = None
    if need_dw and weight is not None:
        # "llama" multiplies W by n rounded to x.dtype, so that n is what dW sees.
        applied = normed.to(x.dtype).to(math_dtype) if casting_mode == "llama" else normed
        dw = (dy_wide * applied).sum(dim=0)
    if need_dx:
        g = dy_wide if weight is None else dy_wide * (weight.to(math_dtype) + offset)
        dx = rstd * (g - normed * (g * normed).mean(dim=-1, keepdim=True))
    return dx, dw


class RMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        X: torch.Tensor,
        W: torch.Tensor | None,
        eps: float,
        offset: float = 0.0,
        casting_mode: str = "llama",
        in_place: bool = True,
        row_mode: Any = None,
    ) -> torch.Tensor:
        rows = as_rows(X)
        y, rstd = rms_norm_forward(rows, W, eps, offset, casting_mode)
        ctx.save_for_backward(rows, W, rstd)
        ctx.offset = offset
        ctx.casting_mode = casting_mode
        ctx.x_shape = X.shape
        return y.view(X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> tuple[Any, ...]:
        rows, W, rstd = ctx.saved_tensors
        need_dx, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dx, dw = rms_norm_backward(as_rows(dY), rows, W, rstd, ctx.offset, ctx.casting_mode, need_dx, need_dw)
        dX = dx.to(rows.dtype).view(ctx.x_shape) if dx is not None else None
        dW = dw.to(W.dtype) if dw is not None else None
        return dX, dW, None, None, None, None, None
