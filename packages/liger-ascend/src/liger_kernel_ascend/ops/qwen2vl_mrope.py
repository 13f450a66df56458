"""Qwen2-VL multimodal rotary position embedding (M-RoPE) on the NPU
(math: :mod:`liger_kernel.ops.qwen2vl_mrope`; rotate-half convention).

The rotation is the rope kernel's (:mod:`liger_kernel_ascend.ops.rope`): one
launch rotates q and k (or their gradients), one program per vector core
looping over (batch, position) items, heads in UB-sized (heads x head_dim / 2)
tiles, one head per tile when a head pitch is not a multiple of 32 bytes (the
A3 vector cores fault on such a 2-D tile). What is M-RoPE's own is where an
item's cos and sin come from: column d of a half takes stream 0, 1 or 2
(temporal, height, width) by the section it falls in. A per-column stream
offset would make every table load a gather, which the compiler lowers to one
scalar load per column (``DiscreteMemAccess``). Here the section bounds are
compile-time constants: each stream's row is loaded contiguously, masked to
its own columns, and the three are added (each column is non-zero in exactly
one of them, so the sum is exact). One compiled kernel per ``mrope_section``,
of which a model has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel_ascend.ops.rope import rotate_item, rotate_qk


@triton.jit
def _section_row(TABLE, row, stream_stride, cols, in_temporal, in_height, in_width):
    """One half of a token's merged cos (or sin) row: each column from its stream."""
    temporal = tl.load(TABLE + row + cols, mask=in_temporal, other=0.0)
    height = tl.load(TABLE + row + stream_stride + cols, mask=in_height, other=0.0)
    width = tl.load(TABLE + row + 2 * stream_stride + cols, mask=in_width, other=0.0)
    return temporal.to(tl.float32) + height.to(tl.float32) + width.to(tl.float32)


@triton.jit
def _mrope_kernel(
    Q, q_sb, q_sh, q_ss, q_sd,
    QO, qo_sb, qo_sh, qo_ss, qo_sd,
    K, k_sb, k_sh, k_ss, k_sd,
    KO, ko_sb, ko_sh, ko_ss, ko_sd,
    COS, SIN, table_stream_stride, table_batch_stride, table_seq_stride,
    n_batch, n_seq, n_q_heads, n_k_heads, half,
    BACKWARD: tl.constexpr, HEADS: tl.constexpr, HALF: tl.constexpr,
    TEMPORAL: tl.constexpr, HEIGHT: tl.constexpr,
):  # fmt: skip
    n_items = n_batch * n_seq
    cols = tl.arange(0, HALF)
    col_mask = cols < half
    # the section masks are the same for every item: computed once per program
    in_temporal = cols < TEMPORAL
    in_height = (cols >= TEMPORAL) & (cols < TEMPORAL + HEIGHT)
    in_width = (cols >= TEMPORAL + HEIGHT) & col_mask
    for item in tl.range(tl.program_id(0), n_items, tl.num_programs(0)):
        b = tl.cast(item // n_seq, tl.int64)
        s = tl.cast(item % n_seq, tl.int64)
        row = b * table_batch_stride + s * table_seq_stride
        c1 = _section_row(COS, row, table_stream_stride, cols, in_temporal, in_height, in_width)
        c2 = _section_row(COS, row + half, table_stream_stride, cols, in_temporal, in_height, in_width)
        s1 = _section_row(SIN, row, table_stream_stride, cols, in_temporal, in_height, in_width)
        s2 = _section_row(SIN, row + half, table_stream_stride, cols, in_temporal, in_height, in_width)
        rotate_item(
            Q, q_sb, q_sh, q_ss, q_sd, QO, qo_sb, qo_sh, qo_ss, qo_sd,
            K, k_sb, k_sh, k_ss, k_sd, KO, ko_sb, ko_sh, ko_ss, ko_sd,
            b, s, n_q_heads, n_k_heads, half, cols, col_mask, c1, c2, s1, s2, BACKWARD, HEADS,
        )  # fmt: skip


def _tables(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin with one layout and unit-stride columns (what the kernel's row loads assume)."""
    if cos.stride() != sin.stride() or cos.stride(-1) != 1:
        return cos.contiguous(), sin.contiguous()
    return cos, sin


def _mrope(
    q: torch.Tensor | None,
    k: torch.Tensor | None,
    cos: torch.Tensor,
    sin: torch.Tensor,
    mrope_section: Sequence[int],
    unsqueeze_dim: int,
    backward: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    temporal, height, _ = mrope_section
    batch_stride = cos.stride(1) if cos.shape[1] > 1 else 0
    tables = (cos, sin, cos.stride(0), batch_stride, cos.stride(2))
    return rotate_qk(_mrope_kernel, q, k, tables, unsqueeze_dim, backward, TEMPORAL=temporal, HEIGHT=height)


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
        cos, sin = _tables(cos, sin)
        ctx.save_for_backward(cos, sin)
        ctx.mrope_section = tuple(mrope_section)
        ctx.unsqueeze_dim = unsqueeze_dim
        return _mrope(q, k, cos, sin, mrope_section, unsqueeze_dim, backward=False)

    @staticmethod
    def backward(ctx: Any, dq: torch.Tensor, dk: torch.Tensor) -> tuple[Any, ...]:
        cos, sin = ctx.saved_tensors
        need_q, need_k = ctx.needs_input_grad[:2]
        if not (need_q or need_k):
            return None, None, None, None, None, None
        dq_in, dk_in = _mrope(
            dq if need_q else None,
            dk if need_k else None,
            cos,
            sin,
            ctx.mrope_section,
            ctx.unsqueeze_dim,
            backward=True,
        )
        return dq_in, dk_in, None, None, None, None


__all__ = ["Qwen2VLMRopeFunction"]
