"""Rotary position embedding on the NPU (math: :mod:`liger_kernel.ops.rope`,
applied on the halves of head_dim as the contract writes it out).

NPU constraints answered: one launch rotates q and k (forward, and their
gradients in backward), each work item reading its cos and sin rows once for
both; one work item is one (batch, position) pair; the grid is one program per
vector core (never above 65535, however long the sequence) and each program
loops over its items. Heads are processed in
blocks of ``HEADS`` heads x ``HALF`` columns sized by the unified-buffer
planner, so many heads with a wide head_dim still fit the UB. q and k may be
(batch, heads, seq, head_dim) or (batch, seq, heads, head_dim) with any
strides: the kernel reads and writes through strides, no copies.

Partial rotary (``rotary_dim`` below head_dim): the kernel rotates views of
the first ``rotary_dim`` entries of each head, and the rest is concatenated
back by torch (one copy of q and k, only in that case); cos and sin tables
r/2 wide are repeated to r first (one small table per call).
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.backends.torch.rope import position_tables, rotary_parts, with_passed_through
from liger_kernel_ascend.ops._common import PITCH_ALIGN_BYTES, stacked_plan
from liger_kernel_ascend.tiling import next_power_of_2


@triton.jit
def _rotate_heads(
    X, x_sb, x_sh, x_ss, x_sd, OUT, o_sb, o_sh, o_ss, o_sd, b, s, n_heads, half, cols, col_mask,
    c1, c2, first_sin, second_sin, HEADS: tl.constexpr,
):  # fmt: skip
    """Rotate every head of one (batch, position) item of X into OUT."""
    for head_start in tl.range(0, n_heads, HEADS):
        heads = head_start + tl.arange(0, HEADS)
        mask = (heads < n_heads)[:, None] & col_mask[None, :]
        x_at = X + b * x_sb + s * x_ss + heads[:, None].to(tl.int64) * x_sh + cols[None, :] * x_sd
        o_at = OUT + b * o_sb + s * o_ss + heads[:, None].to(tl.int64) * o_sh + cols[None, :] * o_sd
        x1 = tl.load(x_at, mask=mask, other=0.0).to(tl.float32)
        x2 = tl.load(x_at + half * x_sd, mask=mask, other=0.0).to(tl.float32)
        y1 = x1 * c1[None, :] + x2 * first_sin[None, :]
        y2 = x2 * c2[None, :] + x1 * second_sin[None, :]
        tl.store(o_at, y1.to(OUT.dtype.element_ty), mask=mask)
        tl.store(o_at + half * o_sd, y2.to(OUT.dtype.element_ty), mask=mask)


@triton.jit
def rotate_item(
    Q, q_sb, q_sh, q_ss, q_sd, QO, qo_sb, qo_sh, qo_ss, qo_sd,
    K, k_sb, k_sh, k_ss, k_sd, KO, ko_sb, ko_sh, ko_ss, ko_sd,
    b, s, n_q_heads, n_k_heads, half, cols, col_mask, c1, c2, s1, s2,
    BACKWARD: tl.constexpr, HEADS: tl.constexpr,
):  # fmt: skip
    """Rotate the q and k heads of one item by its cos (c1, c2) and sin (s1, s2)
    halves, or by the transpose in backward (shared by RoPE and M-RoPE, which
    differ only in how they read those halves)."""
    if BACKWARD:
        first_sin = s2
        second_sin = -s1
    else:
        first_sin = -s1
        second_sin = s2
    _rotate_heads(
        Q, q_sb, q_sh, q_ss, q_sd, QO, qo_sb, qo_sh, qo_ss, qo_sd, b, s, n_q_heads, half, cols, col_mask,
        c1, c2, first_sin, second_sin, HEADS,
    )  # fmt: skip
    _rotate_heads(
        K, k_sb, k_sh, k_ss, k_sd, KO, ko_sb, ko_sh, ko_ss, ko_sd, b, s, n_k_heads, half, cols, col_mask,
        c1, c2, first_sin, second_sin, HEADS,
    )  # fmt: skip


@triton.jit
def _rope_kernel(
    Q, q_sb, q_sh, q_ss, q_sd,
    QO, qo_sb, qo_sh, qo_ss, qo_sd,
    K, k_sb, k_sh, k_ss, k_sd,
    KO, ko_sb, ko_sh, ko_ss, ko_sd,
    COS, SIN, table_batch_stride, n_batch, n_seq, n_q_heads, n_k_heads, half,
    BACKWARD: tl.constexpr, HEADS: tl.constexpr, HALF: tl.constexpr,
):  # fmt: skip
    n_items = n_batch * n_seq
    cols = tl.arange(0, HALF)
    col_mask = cols < half
    for item in tl.range(tl.program_id(0), n_items, tl.num_programs(0)):
        b = tl.cast(item // n_seq, tl.int64)
        s = tl.cast(item % n_seq, tl.int64)
        table = b * table_batch_stride + s * (2 * half)
        c1 = tl.load(COS + table + cols, mask=col_mask, other=0.0).to(tl.float32)
        c2 = tl.load(COS + table + half + cols, mask=col_mask, other=0.0).to(tl.float32)
        s1 = tl.load(SIN + table + cols, mask=col_mask, other=0.0).to(tl.float32)
        s2 = tl.load(SIN + table + half + cols, mask=col_mask, other=0.0).to(tl.float32)
        # q and k share the item's cos and sin rows: one launch, one table read
        rotate_item(
            Q, q_sb, q_sh, q_ss, q_sd, QO, qo_sb, qo_sh, qo_ss, qo_sd,
            K, k_sb, k_sh, k_ss, k_sd, KO, ko_sb, ko_sh, ko_ss, ko_sd,
            b, s, n_q_heads, n_k_heads, half, cols, col_mask, c1, c2, s1, s2, BACKWARD, HEADS,
        )  # fmt: skip


def _tables(
    cos: torch.Tensor, sin: torch.Tensor, position_ids: torch.Tensor | None, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin as contiguous (1 or batch, seq, head_dim) tables: the kernel
    reads one row per (batch, position) contiguously instead of gathering."""
    cos, sin = position_tables(cos, sin, position_ids, seq_len)
    return cos.contiguous(), sin.contiguous()


def _table_operands(cos: torch.Tensor, sin: torch.Tensor) -> tuple[Any, ...]:
    return cos, sin, cos.stride(0) if cos.shape[0] > 1 else 0


def _unit_head_dim(x: torch.Tensor) -> torch.Tensor:
    # a head_dim that is not unit-stride (an expanded gradient, a strided view) turns each
    # tile load into a strided copy whose staging buffers overflow the UB at 16+ heads
    # (bishengir-compile, compile-ascend lane); one contiguous copy keeps the tiles dense
    return x if x.stride(3) == 1 else x.contiguous()


def rotate_qk(
    kernel: Any,
    q: torch.Tensor | None,
    k: torch.Tensor | None,
    tables: tuple[Any, ...],
    unsqueeze_dim: int,
    backward: bool,
    **table_constants: Any,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Apply ``kernel``'s rotation (or its transpose) to q and k in one launch;
    a None input (a gradient autograd does not need) gives None. ``kernel``
    takes the (q, q out, k, k out) operands, then ``tables`` (its cos and sin
    and how to find a token's rows), then the sizes and the tile constants of
    :func:`_rope_kernel`, then ``table_constants``."""
    present = [x for x in (q, k) if x is not None]
    outs = [torch.empty(x.shape, dtype=x.dtype, device=x.device) for x in present]
    first = present[0]
    head_axis, seq_axis = (1, 2) if unsqueeze_dim == 1 else (2, 1)
    n_batch, n_seq, head_dim = first.shape[0], first.shape[seq_axis], first.shape[3]
    if n_batch * n_seq == 0 or head_dim == 0 or all(x.numel() == 0 for x in present):
        return _placed(q, k, outs)
    inputs = [_unit_head_dim(x) for x in present]
    heads = [x.shape[head_axis] for x in inputs]
    half = head_dim // 2
    half_block = next_power_of_2(half)
    variant = dict(BACKWARD=backward, **table_constants)
    plan = stacked_plan(kernel, n_batch * n_seq, max(heads), half_block, first.dtype, first.device, variant)
    heads_block = plan.rows_per_step
    if any(x.stride(head_axis) * x.element_size() % PITCH_ALIGN_BYTES for x in (*inputs, *outs)):
        heads_block = 1  # a (heads, half) tile needs a 32-byte-aligned head pitch (A3 vector cores)

    def operand(x: torch.Tensor) -> list[Any]:
        strides = x.stride()
        return [x, strides[0], strides[head_axis], strides[seq_axis], strides[3]]

    # a missing second operand is the first again with no heads: its loop does nothing
    pairs = [(inputs[i], outs[i], heads[i]) for i in range(len(inputs))]
    if len(pairs) == 1:
        pairs.append((inputs[0], outs[0], 0))
    (qx, qo, nq), (kx, ko, nk) = pairs
    kernel[(plan.grid,)](
        *operand(qx), *operand(qo), *operand(kx), *operand(ko), *tables, n_batch, n_seq, nq, nk, half,
        **variant, HEADS=heads_block, HALF=half_block,
    )  # fmt: skip
    return _placed(q, k, outs)


def _placed(
    q: torch.Tensor | None, k: torch.Tensor | None, outs: list[torch.Tensor]
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``outs`` (one per present input) back in the (q, k) positions."""
    it = iter(outs)
    return (next(it) if q is not None else None), (next(it) if k is not None else None)


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
        seq_len = q.shape[2 if unsqueeze_dim == 1 else 1]
        r, cos, sin = rotary_parts(q, cos, sin, rotary_dim)
        cos_t, sin_t = _tables(cos, sin, position_ids, seq_len)
        ctx.save_for_backward(cos_t, sin_t)
        ctx.unsqueeze_dim = unsqueeze_dim
        q_rot, k_rot = rotate_qk(
            _rope_kernel, q[..., :r], k[..., :r], _table_operands(cos_t, sin_t), unsqueeze_dim, False
        )
        return with_passed_through(q_rot, q), with_passed_through(k_rot, k)

    @staticmethod
    def backward(ctx: Any, dq: torch.Tensor, dk: torch.Tensor) -> tuple[Any, ...]:
        cos_t, sin_t = ctx.saved_tensors
        need_q, need_k = ctx.needs_input_grad[:2]
        if not (need_q or need_k):
            return None, None, None, None, None, None, None
        r = cos_t.shape[-1]
        dq_in, dk_in = rotate_qk(
            _rope_kernel,
            dq[..., :r] if need_q else None,
            dk[..., :r] if need_k else None,
            _table_operands(cos_t, sin_t),
            ctx.unsqueeze_dim,
            True,
        )
        dq_in = None if dq_in is None else with_passed_through(dq_in, dq)
        dk_in = None if dk_in is None else with_passed_through(dk_in, dk)
        return dq_in, dk_in, None, None, None, None, None
