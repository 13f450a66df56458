"""Attention residuals in pure PyTorch (math: :mod:`liger_kernel.ops.attn_res`), float32.

Only the inputs are saved; the backward recomputes rstd, the scores and the
weights from V (one more pass over it, no (tokens, N) state kept).
"""

from __future__ import annotations

from typing import Any

import torch


def _scores(v: torch.Tensor, u: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, rstd), each (N, tokens), for v (N, tokens, D) in float32."""
    rstd = torch.rsqrt(v.square().mean(-1) + eps)
    return (v @ u) * rstd, rstd


class AttnResFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, V_stacked: torch.Tensor, w_query: torch.Tensor, w_norm: torch.Tensor, eps: float
    ) -> torch.Tensor:
        n, d = V_stacked.shape[0], V_stacked.shape[-1]
        v = V_stacked.reshape(n, -1, d).float()
        scores, _ = _scores(v, w_query.float() * w_norm.float(), eps)
        h = (torch.softmax(scores, 0)[:, :, None] * v).sum(0)
        ctx.save_for_backward(V_stacked, w_query, w_norm)
        ctx.eps = eps
        return h.reshape(V_stacked.shape[1:]).to(V_stacked.dtype)

    @staticmethod
    def backward(ctx: Any, dh: torch.Tensor) -> tuple[Any, ...]:
        V_stacked, w_query, w_norm = ctx.saved_tensors
        n, d = V_stacked.shape[0], V_stacked.shape[-1]
        v = V_stacked.reshape(n, -1, d).float()
        g = dh.reshape(-1, d).float()
        wq, wn = w_query.float(), w_norm.float()
        scores, rstd = _scores(v, wq * wn, ctx.eps)
        a = torch.softmax(scores, 0)
        da = (v * g).sum(-1)
        ds = a * (da - (a * da).sum(0, keepdim=True))
        dv = a[:, :, None] * g + (ds * rstd)[:, :, None] * (wq * wn) - (ds * scores * rstd.square() / d)[:, :, None] * v
        du = ((ds * rstd)[:, :, None] * v).sum((0, 1))
        return (
            dv.reshape(V_stacked.shape).to(V_stacked.dtype),
            (du * wn).to(w_query.dtype),
            (du * wq).to(w_norm.dtype),
            None,
        )
