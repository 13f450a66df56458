"""Kullback-Leibler divergence over the last dimension, portable Triton kernels
(math: :mod:`liger_kernel.ops.kl_div`).

"none" stores l per element; the other reductions store one fp32 sum per
row, which the host adds and divides by the reduction's divisor D. In the
backward, for a scalar loss, the factor -g / D is one device value (no host
synchronization).

Layout: a persistent grid walks rows; each row is walked in blocks of at most
``streaming_block`` columns, so any vocabulary fits and neither input is ever
copied to fp32 as a whole. Each row's sum is kept per row and added by torch,
so the loss is the same from run to run.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.backend import DeviceProfile
from liger_kernel.dispatch import device_profile
from liger_kernel.ops.kl_div import loss_dtype, reduction_divisor
from liger_kernel.triton.launch import (
    RowLaunch,
    accumulator_dtype,
    as_rows,
    launch,
    pipeline_stages,
    register_block,
    shaped,
)

#: On-chip bytes budgeted per column of a block: the fp32 values alive at once
#: in these kernels, at most eight (measured under the strict NPU mock; the
#: peak is TVD's backward with a per-element gradient). On an H100 or H200
#: this gives 4096-column blocks (16 warps, 8 values per thread). Measured on
#: an H200 at 8192 x 128256 bf16: KL forward 1.41 ms and backward 1.13 ms
#: (3.0 and 3.7 TB/s; a copy of y_pred runs at 4.2 TB/s); forward plus
#: backward, 4096- and 8192-column blocks with 2 to 8 programs per SM are
#: within 10% of each other, 1024-column blocks slower. On an Ascend A2
#: vector core (168 KiB budget) the block is also 4096, 128 KiB live.
BYTES_PER_BLOCK_COLUMN = 32


def streaming_launch(profile: DeviceProfile, n_rows: int, n_cols: int) -> RowLaunch:
    """Persistent grid, block and num_warps of a kernel that streams rows of
    two inputs block by block: :func:`row_block`, further capped to the widest
    power of two that the profile's register budget holds at
    BYTES_PER_BLOCK_COLUMN each."""
    block = register_block(profile, n_cols, BYTES_PER_BLOCK_COLUMN)
    return RowLaunch(profile.grid(n_rows), block, profile.num_warps(block))


@triton.jit
def _kl_div_forward_kernel(
    PRED,
    pred_row_stride,
    TRUE,
    true_row_stride,
    LOSS,
    n_rows,
    n_cols,
    eps,
    LOG_TARGET: tl.constexpr,
    ELEMENTWISE: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    for row in tl.range(pid, n_rows, tl.num_programs(0)):
        pred_row = PRED + row * pred_row_stride
        true_row = TRUE + row * true_row_stride
        row_sum = tl.zeros([BLOCK], dtype=ACC)
        for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
            offsets = start + cols
            mask = offsets < n_cols
            # masked columns load y = t = 0, whose loss is 0 in both forms
            y = tl.load(pred_row + offsets, mask=mask, other=0.0).to(ACC)
            t = tl.load(true_row + offsets, mask=mask, other=0.0).to(ACC)
            if LOG_TARGET:
                loss = tl.exp(t) * (t - y)
            else:
                loss = t * (tl.log(tl.maximum(t, eps)) - y)
            if ELEMENTWISE:
                tl.store(LOSS + row * n_cols + offsets, loss.to(LOSS.dtype.element_ty), mask=mask)
            else:
                row_sum += loss
        if not ELEMENTWISE:
            tl.store(LOSS + row, tl.sum(row_sum, axis=0).to(LOSS.dtype.element_ty))


@triton.jit
def _kl_div_backward_kernel(
    TRUE,
    true_row_stride,
    GRAD_LOSS,
    grad_row_stride,
    D_PRED,
    n_rows,
    n_cols,
    LOG_TARGET: tl.constexpr,
    ELEMENTWISE: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    if not ELEMENTWISE:
        # -g / D, computed on the device by the caller
        factor = tl.load(GRAD_LOSS).to(ACC)
    for row in tl.range(pid, n_rows, tl.num_programs(0)):
        true_row = TRUE + row * true_row_stride
        for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
            offsets = start + cols
            mask = offsets < n_cols
            t = tl.load(true_row + offsets, mask=mask, other=0.0).to(ACC)
            target_prob = tl.exp(t) if LOG_TARGET else t
            if ELEMENTWISE:
                g = tl.load(GRAD_LOSS + row * grad_row_stride + offsets, mask=mask, other=0.0).to(ACC)
                d_pred = -target_prob * g
            else:
                d_pred = target_prob * factor
            tl.store(D_PRED + row * n_cols + offsets, d_pred.to(D_PRED.dtype.element_ty), mask=mask)


class KLDivFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        y_pred: torch.Tensor,
        y_true: torch.Tensor,
        reduction: str = "batchmean",
        log_target: bool = False,
        eps: float = 1e-10,
    ) -> torch.Tensor:
        pred_rows, true_rows = as_rows(y_pred), as_rows(y_true)
        n_rows, n_cols = pred_rows.shape
        out_dtype = loss_dtype(y_pred.dtype, y_true.dtype)
        elementwise = reduction == "none"
        loss = torch.empty((n_rows, n_cols) if elementwise else (n_rows,), dtype=out_dtype, device=y_pred.device)
        profile = device_profile(y_pred.device)
        plan = streaming_launch(profile, n_rows, n_cols)
        if n_rows > 0:
            launch(
                profile,
                _kl_div_forward_kernel,
                plan.grid,
                pred_rows,
                pred_rows.stride(0),
                true_rows,
                true_rows.stride(0),
                loss,
                n_rows,
                n_cols,
                float(eps),
                LOG_TARGET=bool(log_target),
                ELEMENTWISE=elementwise,
                ACC=accumulator_dtype(out_dtype),
                BLOCK=plan.block,
                STAGES=pipeline_stages(profile, plan.block * (y_pred.element_size() + y_true.element_size())),
                num_warps=plan.num_warps,
            )
        ctx.save_for_backward(true_rows)
        ctx.log_target, ctx.elementwise = bool(log_target), elementwise
        ctx.pred_dtype, ctx.pred_shape = y_pred.dtype, y_pred.shape
        ctx.divisor = reduction_divisor(y_pred.shape, reduction)
        if elementwise:
            return shaped(loss, y_pred.shape)
        return loss.sum() / ctx.divisor

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[Any, ...]:
        (true_rows,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        n_rows, n_cols = true_rows.shape
        d_pred = torch.empty((n_rows, n_cols), dtype=ctx.pred_dtype, device=true_rows.device)
        acc_dtype = loss_dtype(grad_loss.dtype, true_rows.dtype)
        if ctx.elementwise:
            grad_source = as_rows(grad_loss)
            grad_row_stride = grad_source.stride(0)
        else:
            grad_source = grad_loss.to(acc_dtype) / -ctx.divisor
            grad_row_stride = 0
        profile = device_profile(true_rows.device)
        plan = streaming_launch(profile, n_rows, n_cols)
        if n_rows > 0:
            launch(
                profile,
                _kl_div_backward_kernel,
                plan.grid,
                true_rows,
                true_rows.stride(0),
                grad_source,
                grad_row_stride,
                d_pred,
                n_rows,
                n_cols,
                LOG_TARGET=ctx.log_target,
                ELEMENTWISE=ctx.elementwise,
                ACC=accumulator_dtype(acc_dtype),
                BLOCK=plan.block,
                STAGES=pipeline_stages(profile, plan.block * (true_rows.element_size() + grad_source.element_size())),
                num_warps=plan.num_warps,
            )
        return shaped(d_pred, ctx.pred_shape), None, None, None, None
