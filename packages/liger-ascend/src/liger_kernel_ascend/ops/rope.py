"""Rotary position embedding on the NPU (rotate-half convention).

With x = [x1, x2] split in halves of the head dimension and c = [c1, c2],
s = [s1, s2] the halves of cos and sin at the token's position:
    forward:  x1' = x1 * c1 - x2 * s1;   x2' = x2 * c2 + x1 * s2
    backward: dx1 = g1 * c1 + g2 * s2;   dx2 = g2 * c2 - g1 * s1
(the backward is rotate_half transposed), for x in q and k. Math in fp32,
results in the dtypes of q and k.

NPU constraints answered: one work item is one (batch, position) pair; the
grid is one program per vector core (never above 65535, however long the
sequence) and each program loops over its items. Heads are processed in
blocks of ``HEADS`` heads x ``HALF`` columns sized by the unified-buffer
planner, so many heads with a wide head_dim still fit the UB. q and k may be
(batch, heads, seq, head_dim) or (batch, seq, heads, head_dim) with any
strides: the kernel reads and writes through strides, no copies.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.backends.torch.rope import position_tables
from liger_kernel_ascend.ops._common import stacked_plan
from liger_kernel_ascend.tiling import next_power_of_2


@triton.jit
def _rope_kernel(
    X,
    x_sb,
    x_sh,
    x_ss,
    x_sd,
    OUT,
    o_sb,
    o_sh,
    o_ss,
    o_sd,
    COS,
    SIN,
    table_batch_stride,
    n_batch,
    n_seq,
    n_heads,
    half,
    BACKWARD: tl.constexpr,
    HEADS: tl.constexpr,
    HALF: tl.constexpr,
):
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
        if BACKWARD:
            first_sin = s2
            second_sin = -s1
        else:
            first_sin = -s1
            second_sin = s2
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


def _tables(
    cos: torch.Tensor, sin: torch.Tensor, position_ids: torch.Tensor | None, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin as contiguous (1 or batch, seq, head_dim) tables: the kernel
    reads one row per (batch, position) contiguously instead of gathering."""
    cos, sin = position_tables(cos, sin, position_ids, seq_len)
    return cos.contiguous(), sin.contiguous()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, unsqueeze_dim: int, backward: bool) -> torch.Tensor:
    """Apply the rotation (or its transpose) to one of q, k."""
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if x.numel() == 0:
        return out
    if x.stride(3) != 1:
        # a head_dim that is not unit-stride (an expanded gradient, a strided view) turns each
        # tile load into a strided copy whose staging buffers overflow the UB at 16+ heads
        # (bishengir-compile, compile-ascend lane); one contiguous copy keeps the tiles dense
        x = x.contiguous()
    head_axis, seq_axis = (1, 2) if unsqueeze_dim == 1 else (2, 1)
    n_batch, n_heads, n_seq, head_dim = x.shape[0], x.shape[head_axis], x.shape[seq_axis], x.shape[3]
    half = head_dim // 2
    half_block = next_power_of_2(half)
    variant = dict(BACKWARD=backward)
    plan = stacked_plan(_rope_kernel, n_batch * n_seq, n_heads, half_block, x.dtype, x.device, variant)
    xs, os_ = x.stride(), out.stride()
    _rope_kernel[(plan.grid,)](
        x, xs[0], xs[head_axis], xs[seq_axis], xs[3],
        out, os_[0], os_[head_axis], os_[seq_axis], os_[3],
        cos, sin, cos.stride(0) if cos.shape[0] > 1 else 0,
        n_batch, n_seq, n_heads, half,
        **variant, HEADS=plan.rows_per_step, HALF=half_block,
    )  # fmt: skip
    return out


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
    ) -> tuple[torch.Tensor, torch.Tensor]:
        seq_len = q.shape[2 if unsqueeze_dim == 1 else 1]
        cos_t, sin_t = _tables(cos, sin, position_ids, seq_len)
        ctx.save_for_backward(cos_t, sin_t)
        ctx.unsqueeze_dim = unsqueeze_dim
        return _rotate(q, cos_t, sin_t, unsqueeze_dim, False), _rotate(k, cos_t, sin_t, unsqueeze_dim, False)

    @staticmethod
    def backward(ctx: Any, dq: torch.Tensor, dk: torch.Tensor) -> tuple[Any, ...]:
        cos_t, sin_t = ctx.saved_tensors
        grads = [
            _rotate(grad, cos_t, sin_t, ctx.unsqueeze_dim, True) if needed else None
            for needed, grad in zip(ctx.needs_input_grad[:2], (dq, dk))
        ]
        return grads[0], grads[1], None, None, None, None
