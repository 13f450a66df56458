"""Residual add fused with RMSNorm, portable Triton kernels
(math: :mod:`liger_kernel.ops.fused_add_rms_norm`).

The RMSNorm kernels of :mod:`liger_kernel.triton.rms_norm` take the residual
as an option: the forward adds R while loading X and stores S in the same pass,
and the backward adds dS_out to dx before storing it, so the add costs no extra
pass over memory. Neither dY nor dS_out is written, whatever ``in_place`` says
(see RMSNorm).
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.triton.launch import as_rows, shaped
from liger_kernel.triton.rms_norm import CASTING_MODES, rms_norm_backward, rms_norm_forward


class FusedAddRMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        X: torch.Tensor,
        R: torch.Tensor,
        W: torch.Tensor,
        eps: float,
        offset: float = 0.0,
        casting_mode: str = "llama",
        in_place: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mode = CASTING_MODES[casting_mode]
        y, rstd, s = rms_norm_forward(as_rows(X), W, eps, offset, mode, residual_rows=as_rows(R))
        ctx.save_for_backward(s, W, rstd)
        ctx.offset, ctx.mode, ctx.x_shape = offset, mode, X.shape
        # An unused output's gradient arrives as None rather than a tensor of
        # zeros that the backward would have to read.
        ctx.set_materialize_grads(False)
        return shaped(y, X.shape), shaped(s, X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor | None, dS_out: torch.Tensor | None) -> tuple[Any, ...]:
        s, W, rstd = ctx.saved_tensors
        needs_ds = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        if dY is None:
            ds = dS_out if needs_ds else None
            dw = torch.zeros_like(W) if ctx.needs_input_grad[2] else None
        else:
            ds, dw = rms_norm_backward(
                dY,
                s,
                W,
                rstd,
                ctx.offset,
                ctx.mode,
                needs_ds,
                ctx.needs_input_grad[2],
                ds=dS_out,
            )
        if ds is not None:
            # a fresh view even at the same shape: ds may be the gradient
            # tensor autograd's caller still holds (in place, or dS_out itself)
            ds = ds.reshape(ctx.x_shape)
        dx = ds if ctx.needs_input_grad[0] else None
        dr = ds if ctx.needs_input_grad[1] else None
        return dx, dr, dw, None, None, None, None
