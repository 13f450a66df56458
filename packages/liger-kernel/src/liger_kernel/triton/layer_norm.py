"""LayerNorm over the last dimension, portable Triton kernels
(math: :mod:`liger_kernel.ops.layer_norm`).

Statistics and y in fp32, y stored in x.dtype; mean and rstd are kept for
the backward.

Layout as in :mod:`liger_kernel.triton.rms_norm`: a persistent grid walking
rows; a row that fits ``profile.max_block`` stays in registers, a wider one is
walked in blocks (the variance is taken about the mean in a second pass, not
from a running sum of squares, to stay accurate). The backward runs one
program per compute unit; dW and dB are summed per program in fp32. With
rows in registers two programs add their sums into one zeroed partial row (two
addends onto zero: the same in either order, so deterministic; half the
buffer); a row walked in blocks keeps partial rows of its own, which its first
row stores and later rows add to. :mod:`liger_kernel.triton._partials` adds
the partial rows up in one launch.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.triton._partials import sum_partials
from liger_kernel.triton.launch import (
    accumulator_dtype,
    as_rows,
    launch,
    pipeline_stages,
    reduction_grid,
    row_block,
    row_launch,
    shaped,
    statistics_dtype,
)


@triton.jit
def _layer_norm_forward_kernel(
    X,
    x_row_stride,
    Y,
    W,
    B,
    MEAN,
    RSTD,
    n_rows,
    n_cols,
    eps,
    HAS_BIAS: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE_BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    if SINGLE_BLOCK:
        mask = cols < n_cols
        w = tl.load(W + cols, mask=mask, other=0.0).to(ACC)
        b = tl.load(B + cols, mask=mask, other=0.0).to(ACC) if HAS_BIAS else 0.0
        for row in tl.range(pid, n_rows, tl.num_programs(0), num_stages=STAGES):
            x = tl.load(X + row * x_row_stride + cols, mask=mask, other=0.0).to(ACC)
            mean = tl.sum(x, axis=0) / n_cols
            centered = tl.where(mask, x - mean, 0.0)
            rstd = 1.0 / tl.sqrt(tl.sum(centered * centered, axis=0) / n_cols + eps)
            tl.store(MEAN + row, mean)
            tl.store(RSTD + row, rstd)
            y = centered * rstd * w + b
            tl.store(Y + row * n_cols + cols, y.to(Y.dtype.element_ty), mask=mask)
    else:
        for row in tl.range(pid, n_rows, tl.num_programs(0)):
            total = tl.zeros([BLOCK], dtype=ACC)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                total += tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
            mean = tl.sum(total, axis=0) / n_cols
            square_sum = tl.zeros([BLOCK], dtype=ACC)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                centered = tl.where(mask, x - mean, 0.0)
                square_sum += centered * centered
            rstd = 1.0 / tl.sqrt(tl.sum(square_sum, axis=0) / n_cols + eps)
            tl.store(MEAN + row, mean)
            tl.store(RSTD + row, rstd)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                w = tl.load(W + start + cols, mask=mask, other=0.0).to(ACC)
                y = (x - mean) * rstd * w
                if HAS_BIAS:
                    y += tl.load(B + start + cols, mask=mask, other=0.0).to(ACC)
                tl.store(Y + row * n_cols + start + cols, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _layer_norm_backward_kernel(
    DY,
    dy_row_stride,
    DX,
    X,
    x_row_stride,
    W,
    MEAN,
    RSTD,
    DW_PARTIAL,
    DB_PARTIAL,
    db_offset,
    n_rows,
    n_cols,
    COMPUTE_DX: tl.constexpr,
    COMPUTE_DW: tl.constexpr,
    COMPUTE_DB: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE_BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    if SINGLE_BLOCK:
        mask = cols < n_cols
        w = tl.load(W + cols, mask=mask, other=0.0).to(ACC)
        dw_sum = tl.zeros([BLOCK], dtype=ACC)
        db_sum = tl.zeros([BLOCK], dtype=ACC)
        for row in tl.range(pid, n_rows, tl.num_programs(0), num_stages=STAGES):
            x = tl.load(X + row * x_row_stride + cols, mask=mask, other=0.0).to(ACC)
            dy = tl.load(DY + row * dy_row_stride + cols, mask=mask, other=0.0).to(ACC)
            n = (x - tl.load(MEAN + row)) * tl.load(RSTD + row)
            if COMPUTE_DX:
                g = dy * w
                mean_g = tl.sum(g, axis=0) / n_cols
                mean_gn = tl.sum(g * n, axis=0) / n_cols
                dx = tl.load(RSTD + row) * (g - mean_g - n * mean_gn)
                tl.store(DX + row * n_cols + cols, dx.to(DX.dtype.element_ty), mask=mask)
            if COMPUTE_DW:
                dw_sum += dy * n
            if COMPUTE_DB:
                db_sum += dy
        # programs 2p and 2p + 1 share partial row p
        if COMPUTE_DW:
            tl.atomic_add(DW_PARTIAL + (pid // 2) * n_cols + cols, dw_sum, mask=mask)
        if COMPUTE_DB:
            tl.atomic_add(DB_PARTIAL + db_offset + (pid // 2) * n_cols + cols, db_sum, mask=mask)
    else:
        # Each program owns one row of the partial buffers; its first row
        # (row == pid) stores without reading, later rows add.
        for row in tl.range(pid, n_rows, tl.num_programs(0)):
            mean = tl.load(MEAN + row)
            rstd = tl.load(RSTD + row)
            mean_g = 0.0
            mean_gn = 0.0
            if COMPUTE_DX:
                g_sum = tl.zeros([BLOCK], dtype=ACC)
                gn_sum = tl.zeros([BLOCK], dtype=ACC)
                for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                    mask = start + cols < n_cols
                    x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                    dy = tl.load(DY + row * dy_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                    g = dy * tl.load(W + start + cols, mask=mask, other=0.0).to(ACC)
                    g_sum += g
                    gn_sum += g * (x - mean) * rstd
                mean_g = tl.sum(g_sum, axis=0) / n_cols
                mean_gn = tl.sum(gn_sum, axis=0) / n_cols
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                dy = tl.load(DY + row * dy_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                n = (x - mean) * rstd
                if COMPUTE_DX:
                    g = dy * tl.load(W + start + cols, mask=mask, other=0.0).to(ACC)
                    dx = rstd * (g - mean_g - n * mean_gn)
                    tl.store(DX + row * n_cols + start + cols, dx.to(DX.dtype.element_ty), mask=mask)
                if COMPUTE_DW:
                    partial = DW_PARTIAL + pid * n_cols + start + cols
                    dw = dy * n
                    if row != pid:
                        dw += tl.load(partial, mask=mask, other=0.0)
                    tl.store(partial, dw, mask=mask)
                if COMPUTE_DB:
                    partial = DB_PARTIAL + db_offset + pid * n_cols + start + cols
                    db = dy
                    if row != pid:
                        db += tl.load(partial, mask=mask, other=0.0)
                    tl.store(partial, db, mask=mask)


class LayerNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, X: torch.Tensor, W: torch.Tensor, B: torch.Tensor | None, eps: float) -> torch.Tensor:
        x_rows = as_rows(X)
        n_rows, n_cols = x_rows.shape
        profile = device_profile(X.device)
        plan = row_launch(profile, n_rows, n_cols)
        stats_dtype = statistics_dtype(X.dtype)
        y = torch.empty((n_rows, n_cols), dtype=X.dtype, device=X.device)
        mean = torch.empty(n_rows, dtype=stats_dtype, device=X.device)
        rstd = torch.empty(n_rows, dtype=stats_dtype, device=X.device)
        launch(
            profile,
            _layer_norm_forward_kernel,
            plan.grid,
            x_rows,
            x_rows.stride(0),
            y,
            W,
            B if B is not None else W,
            mean,
            rstd,
            n_rows,
            n_cols,
            eps,
            HAS_BIAS=B is not None,
            ACC=accumulator_dtype(X.dtype),
            BLOCK=plan.block,
            SINGLE_BLOCK=plan.block >= n_cols,
            # a row walked in blocks has three pipelined loops, each with its own buffers
            STAGES=pipeline_stages(profile, (1 if plan.block >= n_cols else 3) * plan.block * X.element_size()),
            num_warps=plan.num_warps,
        )
        ctx.save_for_backward(x_rows, W, mean, rstd)
        ctx.has_bias, ctx.bias_dtype, ctx.x_shape = B is not None, B.dtype if B is not None else None, X.shape
        return shaped(y, X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> tuple[Any, ...]:
        x_rows, W, mean, rstd = ctx.saved_tensors
        n_rows, n_cols = x_rows.shape
        profile = device_profile(x_rows.device)
        block = row_block(n_cols, profile)
        grid = reduction_grid(profile, n_rows)
        single_block = block >= n_cols
        needs_dx, needs_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        needs_db = ctx.has_bias and ctx.needs_input_grad[2]
        dy_rows = as_rows(dY)
        dx = torch.empty((n_rows, n_cols), dtype=x_rows.dtype, device=x_rows.device) if needs_dx else None
        # dW's and dB's partial rows share one buffer: one allocation, one final sum
        partial_rows = (grid + 1) // 2 if single_block else grid
        partials = None
        if needs_dw or needs_db:
            sums = 2 if needs_dw and needs_db else 1
            allocate = torch.zeros if single_block else torch.empty
            partials = allocate((sums, partial_rows, n_cols), dtype=rstd.dtype, device=x_rows.device)
        # dB's rows follow dW's in the buffer when both are summed
        db_offset = partial_rows * n_cols if needs_dw else 0
        launch(
            profile,
            _layer_norm_backward_kernel,
            grid,
            dy_rows,
            dy_rows.stride(0),
            dx if dx is not None else dy_rows,
            x_rows,
            x_rows.stride(0),
            W,
            mean,
            rstd,
            partials if partials is not None else rstd,
            partials if partials is not None else rstd,
            db_offset,
            n_rows,
            n_cols,
            COMPUTE_DX=needs_dx,
            COMPUTE_DW=needs_dw,
            COMPUTE_DB=needs_db,
            ACC=accumulator_dtype(x_rows.dtype),
            BLOCK=block,
            SINGLE_BLOCK=single_block,
            STAGES=pipeline_stages(
                profile, (1 if single_block else 2) * block * (x_rows.element_size() + dy_rows.element_size())
            ),
            num_warps=profile.num_warps(block),
        )
        dx = shaped(dx, ctx.x_shape) if dx is not None else None
        dw = db = None
        if partials is not None:
            dtypes = [W.dtype] * needs_dw + [ctx.bias_dtype] * needs_db
            totals = sum_partials(partials, dtypes)
            dw = totals[0] if needs_dw else None
            db = totals[-1] if needs_db else None
        return dx, dw, db, None
