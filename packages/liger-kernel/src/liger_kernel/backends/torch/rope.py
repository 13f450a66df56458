"""Rotary position embedding in pure PyTorch (math: :mod:`liger_kernel.ops.rope`).

cos and sin are brought to (batch or 1, seq, head_dim) tables first
(:func:`position_tables`), then broadcast over heads at ``unsqueeze_dim``.
With partial rotary the first ``rotary_dim`` entries of each head are rotated
and the rest are concatenated back unchanged (:func:`rotary_parts`).
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import compute_dtype


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def _rotate_half_transposed(y: torch.Tensor) -> torch.Tensor:
    first, second = y.chunk(2, dim=-1)
    return torch.cat((second, -first), dim=-1)


def position_tables(
    cos: torch.Tensor, sin: torch.Tensor, position_ids: torch.Tensor | None, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin as (1 or batch, seq, head_dim) tables: 3-D ones as given,
    rows of 2-D ones picked by ``position_ids`` (the first ``seq_len`` rows
    without). An id outside the table reads no row and gives NaN: reporting
    it as an error needs the host (see the op contract). Backends that gather
    the rows with torch (the NPU's) share this."""
    if cos.dim() != 2:
        return cos, sin
    if position_ids is None:
        return cos[:seq_len].unsqueeze(0), sin[:seq_len].unsqueeze(0)
    index = position_ids.reshape(-1, seq_len).long()
    in_table = ((index >= 0) & (index < cos.shape[0])).unsqueeze(-1)
    index = index.clamp(0, cos.shape[0] - 1)
    nan = torch.tensor(float("nan"), dtype=cos.dtype, device=cos.device)
    return torch.where(in_table, cos[index], nan), torch.where(in_table, sin[index], nan)


def rotary_parts(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, rotary_dim: int | None
) -> tuple[int, torch.Tensor, torch.Tensor]:
    """(r, cos, sin) of the op contract's partial rotary: the rotated width r,
    and tables r wide (halves repeated where they came r/2 wide). Backends
    rotate ``x[..., :r]`` by them and pass ``x[..., r:]`` through."""
    r = cos.shape[-1] if rotary_dim is None else rotary_dim
    if cos.shape[-1] != r:
        cos, sin = torch.cat((cos, cos), dim=-1), torch.cat((sin, sin), dim=-1)
    return r, cos, sin


def with_passed_through(rotated: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``rotated`` (the first entries of each head) with the rest of ``x`` after it."""
    r = rotated.shape[-1]
    return rotated if r == x.shape[-1] else torch.cat((rotated, x[..., r:].to(rotated.dtype)), dim=-1)


def _broadcastable_tables(
    cos: torch.Tensor, sin: torch.Tensor, position_ids: torch.Tensor | None, seq_len: int, unsqueeze_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    cos, sin = position_tables(cos, sin, position_ids, seq_len)
    return cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)


def rotate_forward(
    ctx: Any, q: torch.Tensor, k: torch.Tensor, cos_b: torch.Tensor, sin_b: torch.Tensor, math_dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate q and k by broadcastable tables and keep what :func:`rotate_backward` needs;
    rope and M-RoPE differ only in how they build the tables."""
    r = cos_b.shape[-1]
    q_wide, k_wide = q[..., :r].to(math_dtype), k[..., :r].to(math_dtype)
    q_out = with_passed_through(q_wide * cos_b + _rotate_half(q_wide) * sin_b, q)
    k_out = with_passed_through(k_wide * cos_b + _rotate_half(k_wide) * sin_b, k)
    ctx.save_for_backward(cos_b, sin_b)
    ctx.dtypes = (q.dtype, k.dtype)
    return q_out.to(q.dtype), k_out.to(k.dtype)


def rotate_backward(ctx: Any, dq_out: torch.Tensor, dk_out: torch.Tensor) -> tuple[Any, ...]:
    """Gradients of q and k after :func:`rotate_forward`; the other inputs get none."""
    cos_b, sin_b = ctx.saved_tensors
    r = cos_b.shape[-1]
    grads = []
    for needed, grad_out, dtype in zip(ctx.needs_input_grad[:2], (dq_out, dk_out), ctx.dtypes):
        if not needed:
            grads.append(None)
            continue
        g = grad_out.to(cos_b.dtype)
        g_rot = g[..., :r]
        grads.append(with_passed_through(g_rot * cos_b + _rotate_half_transposed(g_rot * sin_b), g).to(dtype))
    return grads[0], grads[1], None, None, None, None, None


class RopeFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        unsqueeze_dim: int = 1,
        rotary_dim: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        math_dtype = compute_dtype(q, k, cos)
        seq_len = q.shape[2 if unsqueeze_dim == 1 else 1]
        _, cos, sin = rotary_parts(q, cos, sin, rotary_dim)
        cos_b, sin_b = _broadcastable_tables(
            cos.to(math_dtype), sin.to(math_dtype), position_ids, seq_len, unsqueeze_dim
        )
        return rotate_forward(ctx, q, k, cos_b, sin_b, math_dtype)

    @staticmethod
    def backward(ctx: Any, dq_out: torch.Tensor, dk_out: torch.Tensor) -> tuple[Any, ...]:
        return rotate_backward(ctx, dq_out, dk_out)
