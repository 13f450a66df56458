"""Residual add fused with RMSNorm on the NPU
(math: :mod:`liger_kernel.ops.fused_add_rms_norm`).

NPU constraints answered: the RMSNorm kernels of :mod:`.rms_norm` (one program
per vector core, UB-sized sub-blocks) with the add done in the first pass over
each row, which also stores S; the second pass normalizes S. The tile plan
counts the extra residual tiles (op ``fused_add_rms_norm`` in the planner).
``in_place`` (write S over X) is not used: S is a fresh tensor, so X and R stay
valid for the caller.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel_ascend.ops._common import as_rows
from liger_kernel_ascend.ops.rms_norm import CASTING, rms_norm_backward, rms_norm_forward


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
        cast = CASTING[casting_mode]
        y, rstd, s = rms_norm_forward(as_rows(X), W, eps, offset, cast, residual=as_rows(R))
        ctx.save_for_backward(s, W, rstd)
        ctx.cast, ctx.offset, ctx.shape = cast, float(offset), X.shape
        return y.view(X.shape), s.view(X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor, dS_out: torch.Tensor) -> tuple[Any, ...]:
        s, W, rstd = ctx.saved_tensors
        ds, dW = rms_norm_backward(
            as_rows(dY), s, W, rstd, ctx.offset, ctx.cast, ctx.needs_input_grad[2], dres=as_rows(dS_out)
        )
        ds = ds.view(ctx.shape)
        dX = ds if ctx.needs_input_grad[0] else None
        # X and R must not share one gradient tensor: accumulating into one would change the other
        dR = (ds.clone() if dX is not None else ds) if ctx.needs_input_grad[1] else None
        return dX, dR, dW, None, None, None, None
