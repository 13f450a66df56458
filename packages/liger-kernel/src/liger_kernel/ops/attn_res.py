"""Attention residuals (AttnRes): a softmax over depth in place of the residual sum.

For V of shape (N, ..., D), N block outputs (N >= 1) over the same tokens, a
learned pseudo-query w_query (D,) and RMSNorm weight w_norm (D,), per token:
    rstd_i  = 1 / sqrt(mean_d(v_i**2) + eps)
    s_i     = sum_d w_query[d] * w_norm[d] * v_i[d] * rstd_i      (RMSNorm'd keys)
    a       = softmax over i of s
    h       = sum_i a_i * v_i                                     shape (..., D)
in float32 (the normalized key is not rounded to w_norm's dtype first), h
rounded to V's dtype. Backward, with u = w_query * w_norm and g = dh:
    da_i = <g, v_i>,  ds_i = a_i * (da_i - sum_j a_j da_j)
    dv_i = a_i g + ds_i * (rstd_i u - s_i rstd_i**2 / D * v_i)
    du   = sum over tokens and i of ds_i rstd_i v_i;  dw_query = du * w_norm, dw_norm = du * w_query
each gradient in its argument's dtype.

``attn_res_forward`` / ``attn_res_backward`` keep 0.8.5's signatures and results
(float32 a and rstd as (tokens, N)); they run the op on whichever backend it
routes to. The backward recomputes a and rstd from V, so its ``Alpha`` and
``RSTD`` arguments are accepted and not read.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from liger_kernel.ops._contract import (
    DispatchedFunction,
    require_real,
    require_same_device,
    require_shape,
    require_tensor,
)

#: V, w_query and w_norm
ATTN_RES_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


class LigerAttnResFunction(DispatchedFunction):
    op = "attn_res"
    backward_reads = ("V_stacked", "w_query", "w_norm")

    @staticmethod
    def check(V_stacked: torch.Tensor, w_query: torch.Tensor, w_norm: torch.Tensor, eps: float) -> None:
        require_tensor("V_stacked", V_stacked, ATTN_RES_DTYPES)
        if V_stacked.dim() < 2:
            raise ValueError(f"V_stacked must be (N, ..., D), at least 2-D, got shape {tuple(V_stacked.shape)}")
        if V_stacked.shape[0] == 0 or V_stacked.shape[-1] == 0:
            raise ValueError(
                f"V_stacked has shape {tuple(V_stacked.shape)}: it needs at least one block (N) and D >= 1"
            )
        width = (V_stacked.shape[-1],)
        require_tensor("w_query", w_query, ATTN_RES_DTYPES)
        require_shape("w_query", w_query, width, "the last dimension of V_stacked")
        require_tensor("w_norm", w_norm, ATTN_RES_DTYPES)
        require_shape("w_norm", w_norm, width, "the last dimension of V_stacked")
        require_real("eps", eps, minimum=0.0)
        require_same_device("V_stacked", {"V_stacked": V_stacked, "w_query": w_query, "w_norm": w_norm})

    @staticmethod
    def outputs(V_stacked, *_):
        return ((tuple(V_stacked.shape[1:]), V_stacked.dtype),)


def stacked(blocks: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """V as one tensor: a list or tuple of N block outputs of one shape is stacked (differentiably)."""
    if isinstance(blocks, (list, tuple)):
        if not blocks:
            raise ValueError("V_stacked: an empty list of blocks (AttnRes needs at least one)")
        return torch.stack(list(blocks))
    return blocks


def depth_statistics(V: torch.Tensor, w_query: torch.Tensor, w_norm: torch.Tensor, eps: float) -> tuple:
    """(a, rstd), float32, each (tokens, N), as the module docstring defines them."""
    v = V.detach().reshape(V.shape[0], -1, V.shape[-1]).float()
    rstd = torch.rsqrt(v.square().mean(-1) + eps)
    scores = (v @ (w_query.detach().float() * w_norm.detach().float())) * rstd
    return torch.softmax(scores, 0).t().contiguous(), rstd.t().contiguous()


def attn_res_forward(
    blocks: torch.Tensor | Sequence[torch.Tensor], w_query: torch.Tensor, w_norm: torch.Tensor, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(h (shape of one block), V as (N, tokens, D), a (tokens, N), rstd (tokens, N))."""
    V = stacked(blocks)
    with torch.no_grad():
        h = LigerAttnResFunction.apply(V, w_query, w_norm, eps)
    alpha, rstd = depth_statistics(V, w_query, w_norm, eps)
    return h, V.detach().reshape(V.shape[0], -1, V.shape[-1]), alpha, rstd


def attn_res_backward(
    dh: torch.Tensor,
    V_3d: torch.Tensor,
    w_query: torch.Tensor,
    w_norm: torch.Tensor,
    Alpha: torch.Tensor,
    RSTD: torch.Tensor,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dV shaped as V_3d, dw_query, dw_norm) for the gradient ``dh`` of h, by the
    op's own backward after a forward it runs for that (Alpha and RSTD unread)."""
    inputs = [t.detach().requires_grad_() for t in (V_3d, w_query, w_norm)]
    with torch.enable_grad():
        h = LigerAttnResFunction.apply(*inputs, eps)
        grads = torch.autograd.grad(h, inputs, dh.reshape(h.shape))
    return grads[0], grads[1], grads[2]
