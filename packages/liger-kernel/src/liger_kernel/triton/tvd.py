"""Total variation distance over the last dimension, portable Triton kernels
(math: :mod:`liger_kernel.ops.tvd`).

"none" stores l per element; the other reductions store one fp32 sum per
row, which the host adds and divides by the reduction's divisor D. The
backward recomputes its gradients from p and q (no gradient buffer is kept
between forward and backward), one kernel writing whichever of dp and dq
autograd needs. For a scalar loss g / D is one device value: the kept-row
count is never brought to the host.

Layout as in :mod:`liger_kernel.triton.kl_div`: a persistent grid over rows,
each row walked in blocks; ignored rows are not read.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.ops.kl_div import loss_dtype
from liger_kernel.ops.tvd import reduction_divisor
from liger_kernel.triton.kl_div import streaming_launch
from liger_kernel.triton.launch import accumulator_dtype, as_rows, launch, pipeline_stages, shaped


@triton.jit
def _tvd_forward_kernel(
    P,
    p_row_stride,
    Q,
    q_row_stride,
    LABELS,
    labels_stride,
    LOSS,
    n_rows,
    n_cols,
    ignore_index,
    HAS_LABELS: tl.constexpr,
    ELEMENTWISE: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    for row in tl.range(pid, n_rows, tl.num_programs(0)):
        row_sum = tl.zeros([BLOCK], dtype=ACC)
        ignored = False
        if HAS_LABELS:
            ignored = tl.load(LABELS + row * labels_stride) == ignore_index
        if ignored:
            if ELEMENTWISE:
                for start in tl.range(0, n_cols, BLOCK):
                    offsets = start + cols
                    tl.store(LOSS + row * n_cols + offsets, row_sum.to(LOSS.dtype.element_ty), mask=offsets < n_cols)
        else:
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                offsets = start + cols
                mask = offsets < n_cols
                # one expression: the loaded tiles die at once (the NPU's unified buffer holds fewer)
                diff = tl.load(P + row * p_row_stride + offsets, mask=mask, other=0.0).to(ACC) - tl.load(
                    Q + row * q_row_stride + offsets, mask=mask, other=0.0
                ).to(ACC)
                loss = 0.5 * tl.abs(diff)
                if ELEMENTWISE:
                    tl.store(LOSS + row * n_cols + offsets, loss.to(LOSS.dtype.element_ty), mask=mask)
                else:
                    row_sum += loss
        if not ELEMENTWISE:
            tl.store(LOSS + row, tl.sum(row_sum, axis=0).to(LOSS.dtype.element_ty))


@triton.jit
def _tvd_backward_kernel(
    P,
    p_row_stride,
    Q,
    q_row_stride,
    LABELS,
    labels_stride,
    GRAD_LOSS,
    grad_row_stride,
    D_P,
    D_Q,
    n_rows,
    n_cols,
    ignore_index,
    HAS_LABELS: tl.constexpr,
    ELEMENTWISE: tl.constexpr,
    WRITE_DP: tl.constexpr,
    WRITE_DQ: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    if not ELEMENTWISE:
        # 0.5 * g / D, computed on the device by the caller
        factor = tl.load(GRAD_LOSS).to(ACC)
    for row in tl.range(pid, n_rows, tl.num_programs(0)):
        ignored = False
        if HAS_LABELS:
            ignored = tl.load(LABELS + row * labels_stride) == ignore_index
        if ignored:
            for start in tl.range(0, n_cols, BLOCK):
                offsets = start + cols
                mask = offsets < n_cols
                if WRITE_DP:
                    tl.store(D_P + row * n_cols + offsets, tl.zeros([BLOCK], D_P.dtype.element_ty), mask=mask)
                if WRITE_DQ:
                    tl.store(D_Q + row * n_cols + offsets, tl.zeros([BLOCK], D_Q.dtype.element_ty), mask=mask)
        else:
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                offsets = start + cols
                mask = offsets < n_cols
                diff = tl.load(P + row * p_row_stride + offsets, mask=mask, other=0.0).to(ACC) - tl.load(
                    Q + row * q_row_stride + offsets, mask=mask, other=0.0
                ).to(ACC)
                if ELEMENTWISE:
                    scale = 0.5 * tl.load(GRAD_LOSS + row * grad_row_stride + offsets, mask=mask, other=0.0).to(ACC)
                else:
                    scale = factor
                # 0.5 * sign(p - q) * g / D, with sign(0) = 0
                d_p = tl.where(diff > 0, scale, tl.where(diff < 0, -scale, 0.0))
                if WRITE_DP:
                    tl.store(D_P + row * n_cols + offsets, d_p.to(D_P.dtype.element_ty), mask=mask)
                if WRITE_DQ:
                    tl.store(D_Q + row * n_cols + offsets, (-d_p).to(D_Q.dtype.element_ty), mask=mask)


class TVDFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        p: torch.Tensor,
        q: torch.Tensor,
        shift_labels: torch.Tensor | None = None,
        reduction: str = "batchmean",
        ignore_index: int = -100,
    ) -> torch.Tensor:
        p_rows, q_rows = as_rows(p), as_rows(q)
        n_rows, n_cols = p_rows.shape
        out_dtype = loss_dtype(p.dtype, q.dtype)
        elementwise = reduction == "none"
        labels = shift_labels.reshape(-1) if shift_labels is not None else None
        loss = torch.empty((n_rows, n_cols) if elementwise else (n_rows,), dtype=out_dtype, device=p.device)
        profile = device_profile(p.device)
        plan = streaming_launch(profile, n_rows, n_cols)
        if n_rows > 0:
            launch(
                profile,
                _tvd_forward_kernel,
                plan.grid,
                p_rows,
                p_rows.stride(0),
                q_rows,
                q_rows.stride(0),
                labels if labels is not None else loss,
                labels.stride(0) if labels is not None else 0,
                loss,
                n_rows,
                n_cols,
                ignore_index,
                HAS_LABELS=labels is not None,
                ELEMENTWISE=elementwise,
                ACC=accumulator_dtype(out_dtype),
                BLOCK=plan.block,
                STAGES=pipeline_stages(profile, plan.block * (p.element_size() + q.element_size())),
                num_warps=plan.num_warps,
            )
        divisor = reduction_divisor(labels, ignore_index, n_rows, n_cols, reduction, out_dtype, p.device)
        ctx.save_for_backward(p_rows, q_rows, labels, divisor)
        ctx.ignore_index, ctx.elementwise = ignore_index, elementwise
        ctx.p_shape, ctx.q_shape = p.shape, q.shape
        if elementwise:
            return shaped(loss, p.shape)
        return loss.sum() / divisor

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[Any, ...]:
        p_rows, q_rows, labels, divisor = ctx.saved_tensors
        need_p, need_q = ctx.needs_input_grad[:2]
        if not (need_p or need_q):
            return None, None, None, None, None
        n_rows, n_cols = p_rows.shape
        d_p = torch.empty((n_rows, n_cols), dtype=p_rows.dtype, device=p_rows.device) if need_p else None
        d_q = torch.empty((n_rows, n_cols), dtype=q_rows.dtype, device=q_rows.device) if need_q else None
        if ctx.elementwise:
            grad_source = as_rows(grad_loss)
            grad_row_stride = grad_source.stride(0)
        else:
            grad_source = 0.5 * grad_loss.to(divisor.dtype) / divisor
            grad_row_stride = 0
        profile = device_profile(p_rows.device)
        plan = streaming_launch(profile, n_rows, n_cols)
        if n_rows > 0:
            launch(
                profile,
                _tvd_backward_kernel,
                plan.grid,
                p_rows,
                p_rows.stride(0),
                q_rows,
                q_rows.stride(0),
                labels if labels is not None else divisor,
                labels.stride(0) if labels is not None else 0,
                grad_source,
                grad_row_stride,
                d_p if d_p is not None else grad_source,
                d_q if d_q is not None else grad_source,
                n_rows,
                n_cols,
                ctx.ignore_index,
                HAS_LABELS=labels is not None,
                ELEMENTWISE=ctx.elementwise,
                WRITE_DP=need_p,
                WRITE_DQ=need_q,
                ACC=accumulator_dtype(divisor.dtype),
                BLOCK=plan.block,
                STAGES=pipeline_stages(profile, plan.block * (p_rows.element_size() + q_rows.element_size())),
                num_warps=plan.num_warps,
            )
        d_p = shaped(d_p, ctx.p_shape) if d_p is not None else None
        d_q = shaped(d_q, ctx.q_shape) if d_q is not None else None
        return d_p, d_q, None, None, None
