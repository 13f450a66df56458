"""Residual add fused with RMSNorm, in pure PyTorch
(math: :mod:`liger_kernel.ops.fused_add_rms_norm`).

S = X + R in X.dtype, then the RMSNorm of :mod:`liger_kernel.backends.torch.rms_norm`;
the backward adds dS_out in the compute dtype. ``in_place`` (write S over X)
is not used: S is a fresh tensor, so X and R stay valid for the caller.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import as_rows
from liger_kernel.backends.torch.rms_norm import rms_norm_backward, rms_norm_forward


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
        S = X + R
        rows = as_rows(S)
        y, rstd = rms_norm_forward(rows, W, eps, offset, casting_mode)
        ctx.save_for_backward(rows, W, rstd)
        ctx.offset = offset
        ctx.casting_mode = casting_mode
        return y.view(X.shape), S

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor, dS_out: torch.Tensor) -> tuple[Any, ...]:
        rows, W, rstd = ctx.saved_tensors
        need_dx = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        dx, dw = rms_norm_backward(
            as_rows(dY), rows, W, rstd, ctx.offset, ctx.casting_mode, need_dx, ctx.needs_input_grad[2]
        )
        dX = dR = None
        if dx is not None:
            dS = (dx + as_rows(dS_out).to(dx.dtype)).to(rows.dtype).view(dY.shape)
            dX = dS if ctx.needs_input_grad[0] else None
            # X and R must not share one gradient tensor: accumulating into X.grad would change R.grad.
            if ctx.needs_input_grad[1]:
                dR = dS.clone() if dX is not None else dS
        dW = dw.to(W.dtype) if dw is not None else None
        return dX, dR, dW, None, None, None, None
