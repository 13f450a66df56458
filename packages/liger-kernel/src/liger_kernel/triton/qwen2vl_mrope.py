"""Qwen2-VL multimodal rotary position embedding (M-RoPE), portable Triton kernel
(math: :mod:`liger_kernel.ops.qwen2vl_mrope`; Hugging Face rotate-half convention).

One program per (batch, seq) token, persistent over tokens: it gathers that
token's merged cos and sin rows once, each column from its own stream (the
stream offset is a per-column vector, so no merged table is built in memory),
then rotates every q head and every k head with the rope kernel's head loop
(BLOCK_H heads per tile, one tile when they all fit). Both layouts,
(batch, heads, seq, head_dim) for unsqueeze_dim=1 and (batch, seq, heads,
head_dim) for unsqueeze_dim=2, are read through strides; the section bounds
are runtime arguments, so every split shares one compiled kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.triton.launch import launch
from liger_kernel.triton.rope import _head_strides, _head_tiling, _qk_grads, _rotate_heads, _unit_stride_last


@triton.jit
def _mrope_kernel(
    Q, q_stride_b, q_stride_h, q_stride_s,
    K, k_stride_b, k_stride_h, k_stride_s,
    QO, qo_stride_b, qo_stride_h, qo_stride_s,
    KO, ko_stride_b, ko_stride_h, ko_stride_s,
    COS, SIN, table_stride_stream, table_stride_b, table_stride_s,
    n_tokens, seq_len, n_q_heads, n_k_heads, half, height_start, width_start,
    BACKWARD: tl.constexpr, ACC: tl.constexpr, BLOCK_HQ: tl.constexpr, BLOCK_HK: tl.constexpr,
    BLOCK_D: tl.constexpr, ONE_CHUNK: tl.constexpr, STAGES: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0).to(tl.int64)
    dims = tl.arange(0, BLOCK_D)[None, :]
    dim_mask = dims < half
    # stream 0 (temporal) below height_start, 1 (height) below width_start, else 2 (width)
    stream = (dims >= height_start).to(tl.int64) + (dims >= width_start).to(tl.int64)
    column = stream * table_stride_stream + dims
    for token in tl.range(pid, n_tokens, tl.num_programs(0), num_stages=STAGES):
        b = token // seq_len
        s = token % seq_len
        row = b * table_stride_b + s * table_stride_s + column
        c1 = tl.load(COS + row, mask=dim_mask, other=0.0).to(ACC)
        c2 = tl.load(COS + row + half, mask=dim_mask, other=0.0).to(ACC)
        s1 = tl.load(SIN + row, mask=dim_mask, other=0.0).to(ACC)
        s2 = tl.load(SIN + row + half, mask=dim_mask, other=0.0).to(ACC)
        _rotate_heads(
            Q, q_stride_b, q_stride_h, q_stride_s, QO, qo_stride_b, qo_stride_h, qo_stride_s,
            b, s, n_q_heads, half, c1, c2, s1, s2, BACKWARD, ACC, BLOCK_HQ, BLOCK_D, ONE_CHUNK,
        )  # fmt: skip
        _rotate_heads(
            K, k_stride_b, k_stride_h, k_stride_s, KO, ko_stride_b, ko_stride_h, ko_stride_s,
            b, s, n_k_heads, half, c1, c2, s1, s2, BACKWARD, ACC, BLOCK_HK, BLOCK_D, ONE_CHUNK,
        )  # fmt: skip


def mrope_apply(
    q: torch.Tensor,
    k: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    mrope_section: Sequence[int],
    unsqueeze_dim: int,
    backward: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate q and k (or their gradients, when ``backward``) into new tensors."""
    q, k = _unit_stride_last(q), _unit_stride_last(k)
    if cos.stride() != sin.stride() or cos.stride(-1) != 1:
        cos, sin = cos.contiguous(), sin.contiguous()
    head_axis, seq_axis = (1, 2) if unsqueeze_dim == 1 else (2, 1)
    batch, seq_len, head_dim = q.shape[0], q.shape[seq_axis], q.shape[-1]
    n_q_heads, n_k_heads = q.shape[head_axis], k.shape[head_axis]
    q_out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    k_out = torch.empty(k.shape, dtype=k.dtype, device=k.device)
    n_tokens = batch * seq_len
    if n_tokens == 0 or head_dim == 0:
        return q_out, k_out

    profile = device_profile(q.device)
    half = head_dim // 2
    temporal, height, _ = mrope_section
    launch(profile, _mrope_kernel, profile.grid(n_tokens),
        q, *_head_strides(q, unsqueeze_dim),
        k, *_head_strides(k, unsqueeze_dim),
        q_out, *_head_strides(q_out, unsqueeze_dim),
        k_out, *_head_strides(k_out, unsqueeze_dim),
        cos, sin, cos.stride(0), cos.stride(1) if cos.shape[1] > 1 else 0, cos.stride(2),
        n_tokens, seq_len, n_q_heads, n_k_heads, half, temporal, temporal + height,
        BACKWARD=backward,
        **_head_tiling(profile, q, k, half, n_q_heads, n_k_heads),
    )  # fmt: skip
    return q_out, k_out


class Qwen2VLMRopeFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mrope_section: Sequence[int],
        unsqueeze_dim: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q_out, k_out = mrope_apply(q, k, cos, sin, mrope_section, unsqueeze_dim, backward=False)
        ctx.save_for_backward(cos, sin)
        ctx.mrope_section = tuple(mrope_section)
        ctx.unsqueeze_dim = unsqueeze_dim
        return q_out, k_out

    @staticmethod
    def backward(ctx: Any, dq: torch.Tensor, dk: torch.Tensor) -> tuple[Any, ...]:
        cos, sin = ctx.saved_tensors
        dq_in, dk_in = mrope_apply(dq, dk, cos, sin, ctx.mrope_section, ctx.unsqueeze_dim, backward=True)
        return _qk_grads(ctx, dq_in, dk_in)
