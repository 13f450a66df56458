"""Rotary position embedding, portable Triton kernels
(math: :mod:`liger_kernel.ops.rope`; Hugging Face rotate-half convention).

The rotation is applied on the halves of head_dim, as the contract writes it out.

One program per (batch, seq) position, persistent over positions: it loads
that position's cos and sin rows once (row ``position_ids[b, s]`` of a 2-D
table, row s of a 2-D table without position_ids, row (b or 0, s) of a 3-D
one) and rotates every q head, then every k head, as (heads, head_dim / 2)
tiles. Both layouts, (batch, heads, seq, head_dim) for unsqueeze_dim=1 and
(batch, seq, heads, head_dim) for unsqueeze_dim=2, are read through strides.

Partial rotary: the kernel rotates the first ``rotary_dim`` entries of each
head (views of q, k and the outputs, the same strides), and the rest is copied
through by torch. cos and sin tables r/2 wide are read with both halves at
the same offset (``table_second_half`` 0).
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.triton.launch import MIN_BLOCK, accumulator_dtype, launch, pipeline_stages


@triton.jit
def _rotate_chunk(
    x_base, x_stride_h, y_base, y_stride_h, head_start, n_heads, half, c1, c2, s1, s2,
    BACKWARD: tl.constexpr, ACC: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """Rotate heads [head_start, head_start + BLOCK_H) of one position."""
    dims = tl.arange(0, BLOCK_D)[None, :]
    # int64: heads * x_stride_h passes 2**31 for long sequences in (batch, heads, seq, dim)
    heads = (head_start + tl.arange(0, BLOCK_H)).to(tl.int64)[:, None]
    mask = (heads < n_heads) & (dims < half)
    x_first = x_base + heads * x_stride_h + dims
    y_first = y_base + heads * y_stride_h + dims
    x1 = tl.load(x_first, mask=mask, other=0.0).to(ACC)
    x2 = tl.load(x_first + half, mask=mask, other=0.0).to(ACC)
    if BACKWARD:
        y1 = x1 * c1 + x2 * s2
        y2 = x2 * c2 - x1 * s1
    else:
        y1 = x1 * c1 - x2 * s1
        y2 = x2 * c2 + x1 * s2
    tl.store(y_first, y1.to(y_base.dtype.element_ty), mask=mask)
    tl.store(y_first + half, y2.to(y_base.dtype.element_ty), mask=mask)


@triton.jit
def _rotate_heads(
    X, x_stride_b, x_stride_h, x_stride_s, Y, y_stride_b, y_stride_h, y_stride_s,
    b, s, n_heads, half, c1, c2, s1, s2,
    BACKWARD: tl.constexpr, ACC: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
    ONE_CHUNK: tl.constexpr,
):  # fmt: skip
    """Rotate every head of one position of X into Y, BLOCK_H heads at a time.

    With ONE_CHUNK (every head fits one tile, the usual case) there is no head
    loop, so the loop over positions around it is innermost and Triton can
    pipeline its loads.
    """
    x_base = X + b * x_stride_b + s * x_stride_s
    y_base = Y + b * y_stride_b + s * y_stride_s
    if ONE_CHUNK:
        _rotate_chunk(
            x_base, x_stride_h, y_base, y_stride_h, 0, n_heads, half, c1, c2, s1, s2, BACKWARD, ACC, BLOCK_H, BLOCK_D
        )
    else:
        for head_start in tl.range(0, n_heads, BLOCK_H):
            _rotate_chunk(
                x_base, x_stride_h, y_base, y_stride_h, head_start, n_heads, half, c1, c2, s1, s2,
                BACKWARD, ACC, BLOCK_H, BLOCK_D,
            )  # fmt: skip


@triton.jit
def _rope_kernel(
    Q,
    q_stride_b,
    q_stride_h,
    q_stride_s,
    K,
    k_stride_b,
    k_stride_h,
    k_stride_s,
    QO,
    qo_stride_b,
    qo_stride_h,
    qo_stride_s,
    KO,
    ko_stride_b,
    ko_stride_h,
    ko_stride_s,
    COS,
    SIN,
    table_stride_b,
    table_stride_s,
    POSITION_IDS,
    pos_stride_b,
    pos_stride_s,
    n_table_rows,
    table_second_half,
    n_positions,
    seq_len,
    n_q_heads,
    n_k_heads,
    half,
    HAS_POSITION_IDS: tl.constexpr,
    BACKWARD: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_HQ: tl.constexpr,
    BLOCK_HK: tl.constexpr,
    BLOCK_D: tl.constexpr,
    ONE_CHUNK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    dims = tl.arange(0, BLOCK_D)[None, :]
    dim_mask = dims < half
    for position in tl.range(pid, n_positions, tl.num_programs(0), num_stages=STAGES):
        b = position // seq_len
        s = position % seq_len
        if HAS_POSITION_IDS:
            row = tl.load(POSITION_IDS + b * pos_stride_b + s * pos_stride_s).to(tl.int64)
            # An id outside the table is never read: its position's output is
            # NaN (reporting it as an error needs the host; see the op contract).
            in_table = (row >= 0) & (row < n_table_rows)
            table_row = tl.where(in_table, row, 0) * table_stride_s
            poison = tl.where(in_table, 0.0, float("nan"))
        else:
            table_row = b * table_stride_b + s * table_stride_s
            poison = 0.0
        c1 = tl.load(COS + table_row + dims, mask=dim_mask, other=0.0).to(ACC) + poison
        c2 = tl.load(COS + table_row + table_second_half + dims, mask=dim_mask, other=0.0).to(ACC) + poison
        s1 = tl.load(SIN + table_row + dims, mask=dim_mask, other=0.0).to(ACC) + poison
        s2 = tl.load(SIN + table_row + table_second_half + dims, mask=dim_mask, other=0.0).to(ACC) + poison
        _rotate_heads(
            Q, q_stride_b, q_stride_h, q_stride_s, QO, qo_stride_b, qo_stride_h, qo_stride_s,
            b, s, n_q_heads, half, c1, c2, s1, s2, BACKWARD, ACC, BLOCK_HQ, BLOCK_D, ONE_CHUNK,
        )  # fmt: skip
        _rotate_heads(
            K, k_stride_b, k_stride_h, k_stride_s, KO, ko_stride_b, ko_stride_h, ko_stride_s,
            b, s, n_k_heads, half, c1, c2, s1, s2, BACKWARD, ACC, BLOCK_HK, BLOCK_D, ONE_CHUNK,
        )  # fmt: skip


def _head_strides(x: torch.Tensor, unsqueeze_dim: int) -> tuple[int, int, int]:
    """(batch, head, seq) strides of a q/k tensor in either layout."""
    if unsqueeze_dim == 1:
        return x.stride(0), x.stride(1), x.stride(2)
    return x.stride(0), x.stride(2), x.stride(1)


def _power_of_two_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _unit_stride_last(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


def _head_tiling(
    profile: Any, q: torch.Tensor, k: torch.Tensor, half: int, n_q_heads: int, n_k_heads: int
) -> dict[str, Any]:
    """Tile sizes and launch options of a kernel that rotates heads with :func:`_rotate_heads`
    (rope and M-RoPE): they differ only in where a position's cos and sin rows come from."""
    block_d = max(MIN_BLOCK, _power_of_two_at_least(half))
    # A tile holds both halves of BLOCK_H heads: keep it within one block.
    most_heads = max(1, profile.max_block // (2 * block_d))
    block_hq = min(_power_of_two_at_least(n_q_heads), _power_of_two_at_least(most_heads + 1) // 2)
    block_hk = min(_power_of_two_at_least(n_k_heads), _power_of_two_at_least(most_heads + 1) // 2)
    one_chunk = block_hq >= n_q_heads and block_hk >= n_k_heads
    step_bytes = 2 * block_d * (block_hq * q.element_size() + block_hk * k.element_size())
    return {
        "ACC": accumulator_dtype(q.dtype),
        "BLOCK_HQ": block_hq,
        "BLOCK_HK": block_hk,
        "BLOCK_D": block_d,
        "ONE_CHUNK": one_chunk,
        "STAGES": pipeline_stages(profile, step_bytes) if one_chunk else 1,
        # sized by one half of a tile: x1 and x2 are loaded as separate tiles
        "num_warps": profile.num_warps(max(block_hq, block_hk) * block_d),
    }


def _qk_grads(ctx: Any, dq_in: torch.Tensor, dk_in: torch.Tensor) -> tuple[Any, ...]:
    """Backward result of a rotary function: only q and k of its inputs take gradients."""
    return (
        dq_in if ctx.needs_input_grad[0] else None,
        dk_in if ctx.needs_input_grad[1] else None,
        None,
        None,
        None,
        None,
        None,
    )


def rope_apply(
    q: torch.Tensor,
    k: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    position_ids: torch.Tensor | None,
    unsqueeze_dim: int,
    backward: bool,
    rotary_dim: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate q and k (or their gradients, when ``backward``) into new tensors."""
    q, k = _unit_stride_last(q), _unit_stride_last(k)
    if cos.stride() != sin.stride() or cos.stride(-1) != 1:
        cos, sin = cos.contiguous(), sin.contiguous()
    head_axis, seq_axis = (1, 2) if unsqueeze_dim == 1 else (2, 1)
    rotary = cos.shape[-1] if rotary_dim is None else rotary_dim
    batch, seq_len, head_dim = q.shape[0], q.shape[seq_axis], rotary
    n_q_heads, n_k_heads = q.shape[head_axis], k.shape[head_axis]
    # any dense layout will do (the kernel takes the outputs' strides), and
    # empty_like is the cheaper call on the host, which rope is bound by
    q_full, k_full = torch.empty_like(q), torch.empty_like(k)
    q_out, k_out = q_full, k_full
    if rotary < q.shape[-1]:
        # the pass-through part, then the kernel rotates views of the rest
        q_full[..., rotary:].copy_(q[..., rotary:])
        k_full[..., rotary:].copy_(k[..., rotary:])
        q, k, q_out, k_out = (x[..., :rotary] for x in (q, k, q_full, k_full))

    use_position_ids = cos.dim() == 2 and position_ids is not None
    if cos.dim() == 3:
        table_stride_b = cos.stride(0) if cos.shape[0] > 1 else 0
        table_stride_s = cos.stride(1)
    else:
        table_stride_b, table_stride_s = 0, cos.stride(0)
    pos_stride_b = pos_stride_s = 0
    if use_position_ids:
        pos_stride_s = position_ids.stride(-1)
        pos_stride_b = position_ids.stride(0) if position_ids.dim() == 2 and position_ids.shape[0] > 1 else 0

    profile = device_profile(q.device)
    half = head_dim // 2
    n_positions = batch * seq_len
    grid = profile.grid(n_positions)
    launch(profile, _rope_kernel, grid,
        q, *_head_strides(q, unsqueeze_dim),
        k, *_head_strides(k, unsqueeze_dim),
        q_out, *_head_strides(q_out, unsqueeze_dim),
        k_out, *_head_strides(k_out, unsqueeze_dim),
        cos, sin, table_stride_b, table_stride_s,
        position_ids if use_position_ids else cos, pos_stride_b, pos_stride_s, cos.shape[-2],
        half if cos.shape[-1] == rotary else 0,
        n_positions, seq_len, n_q_heads, n_k_heads, half,
        HAS_POSITION_IDS=use_position_ids,
        BACKWARD=backward,
        **_head_tiling(profile, q, k, half, n_q_heads, n_k_heads),
    )  # fmt: skip
    return q_full, k_full


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
        q_out, k_out = rope_apply(q, k, cos, sin, position_ids, unsqueeze_dim, backward=False, rotary_dim=rotary_dim)
        ctx.save_for_backward(cos, sin, position_ids)
        ctx.unsqueeze_dim = unsqueeze_dim
        ctx.rotary_dim = rotary_dim
        return q_out, k_out

    @staticmethod
    def backward(ctx: Any, dq: torch.Tensor, dk: torch.Tensor) -> tuple[Any, ...]:
        cos, sin, position_ids = ctx.saved_tensors
        dq_in, dk_in = rope_apply(
            dq, dk, cos, sin, position_ids, ctx.unsqueeze_dim, backward=True, rotary_dim=ctx.rotary_dim
        )
        return _qk_grads(ctx, dq_in, dk_in)
