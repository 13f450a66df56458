"""Modulated RMSNorm in pure PyTorch (math: :mod:`liger_kernel.ops.modulated_rms_norm`).

The RMSNorm part is :mod:`liger_kernel.backends.torch.rms_norm`'s, up to the
rounding of its output: the modulation multiplies the unrounded r in the compute
dtype (fp32, fp64 for fp64 inputs), and y is rounded once. Rows are grouped as
(M, N / M, H) so that each modulation row broadcasts over its own rows and its
gradients are sums over them. dx is a fresh tensor, whatever ``in_place`` says.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import as_rows, compute_dtype


def _normed(x: torch.Tensor, weight: torch.Tensor | None, eps: float, offset: float, casting_mode: str, math_dtype):
    """(n as W multiplies it, r, rstd) for 2-D rows, in ``math_dtype``."""
    if casting_mode == "none":
        rstd = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
        n = x * rstd
        r = n if weight is None else n * (weight.to(x.dtype) + offset)
        return n.to(math_dtype), r.to(math_dtype), rstd.to(math_dtype)
    x_wide = x.to(math_dtype)
    rstd = torch.rsqrt(x_wide.pow(2).mean(dim=-1, keepdim=True) + eps)
    n = x_wide * rstd
    if casting_mode == "llama":
        n = n.to(x.dtype).to(math_dtype)
    r = n if weight is None else n * (weight.to(math_dtype) + offset)
    return n, r, rstd


class ModulatedRMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        X: torch.Tensor,
        W: torch.Tensor | None,
        scale: torch.Tensor,
        shift: torch.Tensor | None,
        eps: float,
        offset: float = 0.0,
        casting_mode: str = "llama",
        in_place: bool = True,
    ) -> torch.Tensor:
        rows = as_rows(X)
        n_rows, width = rows.shape
        groups = scale.numel() // width
        math_dtype = compute_dtype(X, W, scale, shift)
        _, r, rstd = _normed(rows, W, eps, offset, casting_mode, math_dtype)
        grouped = r.view(groups, n_rows // groups if groups else 0, width)
        y = grouped * (1 + scale.reshape(groups, 1, width).to(math_dtype))
        if shift is not None:
            y = y + shift.reshape(groups, 1, width).to(math_dtype)
        ctx.save_for_backward(rows, W, scale, rstd)
        ctx.options = (offset, casting_mode, X.shape, shift.shape if shift is not None else None, shift is not None)
        if shift is not None:
            ctx.shift_dtype = shift.dtype
        return y.to(X.dtype).view(X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> tuple[Any, ...]:
        rows, W, scale, rstd = ctx.saved_tensors
        offset, casting_mode, x_shape, shift_shape, has_shift = ctx.options
        n_rows, width = rows.shape
        groups = scale.numel() // width
        per_group = n_rows // groups if groups else 0
        math_dtype = rstd.dtype
        n = _renormed(rows, rstd, casting_mode, math_dtype)
        r = n if W is None else n * (W.to(math_dtype) + offset)
        dy = as_rows(dY).to(math_dtype).view(groups, per_group, width)
        u = (dy * (1 + scale.reshape(groups, 1, width).to(math_dtype))).view(n_rows, width)
        need_dx, need_dw, need_dscale, need_dshift = ctx.needs_input_grad[:4]
        dX = dW = dscale = dshift = None
        if need_dx:
            g = u if W is None else u * (W.to(math_dtype) + offset)
            dx = rstd * (g - n * (g * n).mean(dim=-1, keepdim=True))
            dX = dx.to(rows.dtype).view(x_shape)
        if need_dw and W is not None:
            dW = (u * n).sum(dim=0).to(W.dtype)
        if need_dscale:
            dscale = (dy * r.view(groups, per_group, width)).sum(dim=1).to(scale.dtype).view(scale.shape)
        if need_dshift and has_shift:
            dshift = dy.sum(dim=1).to(ctx.shift_dtype).view(shift_shape)
        return dX, dW, dscale, dshift, None, None, None, None


def _renormed(rows: torch.Tensor, rstd: torch.Tensor, casting_mode: str, math_dtype: torch.dtype) -> torch.Tensor:
    """n = x * rstd as the forward multiplied W by it."""
    if casting_mode == "none":
        return (rows * rstd.to(rows.dtype)).to(math_dtype)
    n = rows.to(math_dtype) * rstd
    return n.to(rows.dtype).to(math_dtype) if casting_mode == "llama" else n
