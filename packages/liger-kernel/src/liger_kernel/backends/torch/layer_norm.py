"""LayerNorm over the last dimension, in pure PyTorch
(math: :mod:`liger_kernel.ops.layer_norm`).

Forward and backward in the compute dtype (fp32, fp64 for fp64 inputs); the
forward keeps mean and rstd for the backward.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import as_rows, compute_dtype


class LayerNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, X: torch.Tensor, W: torch.Tensor, B: torch.Tensor | None, eps: float) -> torch.Tensor:
        rows = as_rows(X)
        math_dtype = compute_dtype(X, W, B)
        x = rows.to(math_dtype)
        mean = x.mean(dim=-1, keepdim=True)
        centered = x - mean
        rstd = torch.rsqrt(centered.pow(2).mean(dim=-1, keepdim=True) + eps)
        y = centered * rstd * W.to(math_dtype)
        if B is not None:
            y = y + B.to(math_dtype)
        ctx.save_for_backward(rows, W, B, mean, rstd)
        return y.to(X.dtype).view(X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> tuple[Any, ...]:
        rows, W, B, mean, rstd = ctx.saved_tensors
        need_dx, need_dw, need_db = ctx.needs_input_grad[:3]
        dy = as_rows(dY).to(rstd.dtype)
        dX = dW = dB = None
        if need_dx or need_dw:
            normed = (rows.to(rstd.dtype) - mean) * rstd
        if need_dx:
            g = dy * W.to(rstd.dtype)
            dx = rstd * (g - g.mean(dim=-1, keepdim=True) - normed * (g * normed).mean(dim=-1, keepdim=True))
            dX = dx.to(rows.dtype).view(dY.shape)
        if need_dw:
            dW = (dy * normed).sum(dim=0).to(W.dtype)
        if need_db and B is not None:
            dB = dy.sum(dim=0).to(B.dtype)
        return dX, dW, dB, None
