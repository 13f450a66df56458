"""MoE SwiGLU experts in pure PyTorch (math: :mod:`liger_kernel.ops.fused_moe`).

The routed slots are sorted by expert and each expert's rows go through one
matrix product per projection; the per-expert row counts are read on the
host, which the reference can afford.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from liger_kernel.backends.torch._common import compute_dtype


def _segments(top_k_index: torch.Tensor, n_experts: int) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
    """The slots sorted by expert (stable), and (expert, start, end) of each
    expert that has rows in that order."""
    flat = top_k_index.reshape(-1)
    order = torch.sort(flat, stable=True).indices
    counts = torch.bincount(flat.long(), minlength=n_experts).tolist()
    segments, start = [], 0
    for expert, count in enumerate(counts):
        if count:
            segments.append((expert, start, start + count))
        start += count
    return order, segments


def _per_expert(
    rows: torch.Tensor, weight: torch.Tensor, segments: list[tuple[int, int, int]], width: int
) -> torch.Tensor:
    """rows[s:e] @ weight[expert]^T for each segment, in the rows' dtype."""
    out = rows.new_zeros((rows.shape[0], width))
    for expert, start, end in segments:
        out[start:end] = rows[start:end] @ weight[expert].to(rows.dtype).T
    return out


def _weight_grad(
    left: torch.Tensor, right: torch.Tensor, like: torch.Tensor, segments: list[tuple[int, int, int]]
) -> torch.Tensor:
    """grad[e] = left[s:e]^T @ right[s:e] per segment, zeros for experts without rows."""
    grad = torch.zeros(like.shape, dtype=left.dtype, device=left.device)
    for expert, start, end in segments:
        grad[expert] = left[start:end].T @ right[start:end]
    return grad.to(like.dtype)


class FusedMoEFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        gate_up_proj: torch.Tensor,
        down_proj: torch.Tensor,
        top_k_index: torch.Tensor,
        top_k_weights: torch.Tensor,
    ) -> torch.Tensor:
        tokens, top_k = top_k_index.shape
        n_experts, hidden, inter = down_proj.shape
        math_dtype = compute_dtype(x)
        order, segments = _segments(top_k_index, n_experts)
        rows = x[order // top_k].to(math_dtype)
        gu = _per_expert(rows, gate_up_proj, segments, 2 * inter).to(x.dtype)
        g, u = gu.to(math_dtype).chunk(2, dim=-1)
        h = (F.silu(g) * u).to(x.dtype)
        y_sorted = _per_expert(h.to(math_dtype), down_proj, segments, hidden).to(x.dtype)
        weights = top_k_weights.reshape(-1)[order].to(math_dtype)
        y = torch.empty((tokens * top_k, hidden), dtype=x.dtype, device=x.device)
        y[order] = (y_sorted.to(math_dtype) * weights[:, None]).to(x.dtype)
        ctx.save_for_backward(x, gate_up_proj, down_proj, top_k_index, top_k_weights, gu, order)
        ctx.segments = segments
        return y.view(tokens, top_k, hidden).to(math_dtype).sum(dim=1).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[Any, ...]:
        x, gate_up_proj, down_proj, top_k_index, top_k_weights, gu, order = ctx.saved_tensors
        need_x, need_gate_up, need_down, _, need_weights = ctx.needs_input_grad
        segments = ctx.segments
        tokens, top_k = top_k_index.shape
        hidden, inter = down_proj.shape[1:]
        math_dtype = compute_dtype(x)
        token_of = order // top_k
        dy_rows = dy[token_of].to(math_dtype)
        weights = top_k_weights.reshape(-1)[order].to(math_dtype)
        g, u = gu.to(math_dtype).chunk(2, dim=-1)
        s = torch.sigmoid(g)
        h = (g * s * u).to(x.dtype).to(math_dtype)
        # dL/dh before the routing weight: down_proj[e]^T dy
        dh = torch.zeros((order.numel(), inter), dtype=math_dtype, device=x.device)
        for expert, start, end in segments:
            dh[start:end] = dy_rows[start:end] @ down_proj[expert].to(math_dtype)
        dx = dgate_up = ddown = dweights = None
        if need_weights:
            dw = torch.empty(order.numel(), dtype=math_dtype, device=x.device)
            dw[order] = (dh * h).sum(dim=-1)
            dweights = dw.view(tokens, top_k).to(top_k_weights.dtype)
        if need_down:
            ddown = _weight_grad((dy_rows * weights[:, None]).to(x.dtype).to(math_dtype), h, down_proj, segments)
        dh = dh * weights[:, None]
        dgu = torch.cat((dh * u * s * (1 + g * (1 - s)), dh * g * s), dim=-1).to(x.dtype).to(math_dtype)
        if need_gate_up:
            dgate_up = _weight_grad(dgu, x[token_of].to(math_dtype), gate_up_proj, segments)
        if need_x:
            dx_rows = torch.zeros((order.numel(), hidden), dtype=math_dtype, device=x.device)
            for expert, start, end in segments:
                dx_rows[start:end] = dgu[start:end] @ gate_up_proj[expert].to(math_dtype)
            slots = torch.empty_like(dx_rows)
            slots[order] = dx_rows.to(x.dtype).to(math_dtype)
            dx = slots.view(tokens, top_k, hidden).sum(dim=1).to(x.dtype)
        return dx, dgate_up, ddown, None, dweights
