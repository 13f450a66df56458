"""PolyNorm, portable Triton kernels (math: :mod:`liger_kernel.ops.poly_norm`).

(r_1, r_2, r_3) are kept per row for the backward, which forms the row sums
s_p = sum over the row of dy * n_p (so mean(dy * n_p) = s_p / H) and adds them
up across rows for dW.

Layout as in :mod:`liger_kernel.triton.rms_norm`: a persistent grid walking
rows; a row that fits ``profile.max_block`` stays in registers, a wider one is
walked in blocks of half that size, as the walk keeps block-shaped running sums
(forward: sums of squares, then y; backward: the row sums, then dx). The backward runs one program per compute unit; each adds its rows'
s_1, s_2, s_3 and sum(dy) in fp32 and stores them in its own row of a (grid, 4)
buffer, summed afterwards (no atomics: deterministic).

dx always gets its own buffer, whatever ``in_place`` says (see the op
contract of RMSNorm).
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.triton.launch import (
    MIN_BLOCK,
    accumulator_dtype,
    as_rows,
    launch,
    pipeline_stages,
    reduction_grid,
    row_block,
    shaped,
    statistics_dtype,
)

#: per-row statistics kept for the backward: r_1, r_2, r_3
N_STATS = 3
#: per-program partial sums of the backward: s_3, s_2, s_1 (W's order), then sum(dy)
N_PARTIALS = 4


@triton.jit
def _poly_norm_forward_kernel(
    X,
    x_row_stride,
    Y,
    W,
    B,
    RSTD,
    n_rows,
    n_cols,
    eps,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE_BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    w3 = tl.load(W).to(ACC)
    w2 = tl.load(W + 1).to(ACC)
    w1 = tl.load(W + 2).to(ACC)
    b = tl.load(B).to(ACC)
    if SINGLE_BLOCK:
        mask = cols < n_cols
        for row in tl.range(pid, n_rows, tl.num_programs(0), num_stages=STAGES):
            x = tl.load(X + row * x_row_stride + cols, mask=mask, other=0.0).to(ACC)
            x2 = x * x
            x3 = x2 * x
            r1 = 1.0 / tl.sqrt(tl.sum(x2, axis=0) / n_cols + eps)
            r2 = 1.0 / tl.sqrt(tl.sum(x2 * x2, axis=0) / n_cols + eps)
            r3 = 1.0 / tl.sqrt(tl.sum(x3 * x3, axis=0) / n_cols + eps)
            tl.store(RSTD + row * 3, r1)
            tl.store(RSTD + row * 3 + 1, r2)
            tl.store(RSTD + row * 3 + 2, r3)
            y = (w3 * r3) * x3 + (w2 * r2) * x2 + (w1 * r1) * x + b
            tl.store(Y + row * n_cols + cols, y.to(Y.dtype.element_ty), mask=mask)
    else:
        for row in tl.range(pid, n_rows, tl.num_programs(0)):
            sum2 = tl.zeros([BLOCK], dtype=ACC)
            sum4 = tl.zeros([BLOCK], dtype=ACC)
            sum6 = tl.zeros([BLOCK], dtype=ACC)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                x2 = x * x
                sum2 += x2
                sum4 += x2 * x2
                sum6 += x2 * x2 * x2
            r1 = 1.0 / tl.sqrt(tl.sum(sum2, axis=0) / n_cols + eps)
            r2 = 1.0 / tl.sqrt(tl.sum(sum4, axis=0) / n_cols + eps)
            r3 = 1.0 / tl.sqrt(tl.sum(sum6, axis=0) / n_cols + eps)
            tl.store(RSTD + row * 3, r1)
            tl.store(RSTD + row * 3 + 1, r2)
            tl.store(RSTD + row * 3 + 2, r3)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                x2 = x * x
                y = (w3 * r3) * (x2 * x) + (w2 * r2) * x2 + (w1 * r1) * x + b
                tl.store(Y + row * n_cols + start + cols, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _poly_norm_dx(x, dy, r1, r2, r3, mean1, mean2, mean3, w1, w2, w3):
    """dx for one block, given the row means of dy * n_p (``mean<p>``)."""
    x2 = x * x
    dx = w1 * r1 * (dy - x * r1 * mean1)
    dx += (2.0 * w2 * r2) * x * (dy - x2 * r2 * mean2)
    dx += (3.0 * w3 * r3) * x2 * (dy - x2 * x * r3 * mean3)
    return dx


@triton.jit
def _poly_norm_backward_kernel(
    DY,
    dy_row_stride,
    DX,
    X,
    x_row_stride,
    W,
    RSTD,
    PARTIALS,
    n_rows,
    n_cols,
    COMPUTE_DX: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE_BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    w3 = tl.load(W).to(ACC)
    w2 = tl.load(W + 1).to(ACC)
    w1 = tl.load(W + 2).to(ACC)
    # this program's sums over its rows, typed scalars of ACC
    dw3 = tl.sum(tl.zeros([BLOCK], dtype=ACC), axis=0)
    dw2 = dw3
    dw1 = dw3
    db = dw3
    for row in tl.range(pid, n_rows, tl.num_programs(0), num_stages=STAGES if SINGLE_BLOCK else 1):
        r1 = tl.load(RSTD + row * 3).to(ACC)
        r2 = tl.load(RSTD + row * 3 + 1).to(ACC)
        r3 = tl.load(RSTD + row * 3 + 2).to(ACC)
        if SINGLE_BLOCK:
            mask = cols < n_cols
            x = tl.load(X + row * x_row_stride + cols, mask=mask, other=0.0).to(ACC)
            dy = tl.load(DY + row * dy_row_stride + cols, mask=mask, other=0.0).to(ACC)
            dy_x = dy * x
            s1 = tl.sum(dy_x, axis=0) * r1
            s2 = tl.sum(dy_x * x, axis=0) * r2
            s3 = tl.sum(dy_x * x * x, axis=0) * r3
            dy_sum = tl.sum(dy, axis=0)
            if COMPUTE_DX:
                dx = _poly_norm_dx(x, dy, r1, r2, r3, s1 / n_cols, s2 / n_cols, s3 / n_cols, w1, w2, w3)
                tl.store(DX + row * n_cols + cols, dx.to(DX.dtype.element_ty), mask=mask)
        else:
            sum1 = tl.zeros([BLOCK], dtype=ACC)
            sum2 = tl.zeros([BLOCK], dtype=ACC)
            sum3 = tl.zeros([BLOCK], dtype=ACC)
            dy_total = tl.zeros([BLOCK], dtype=ACC)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                dy = tl.load(DY + row * dy_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                dy_x = dy * x
                sum1 += dy_x
                dy_x2 = dy_x * x
                sum2 += dy_x2
                sum3 += dy_x2 * x
                dy_total += dy
            s1 = tl.sum(sum1, axis=0) * r1
            s2 = tl.sum(sum2, axis=0) * r2
            s3 = tl.sum(sum3, axis=0) * r3
            dy_sum = tl.sum(dy_total, axis=0)
            if COMPUTE_DX:
                for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                    mask = start + cols < n_cols
                    x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                    dy = tl.load(DY + row * dy_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                    dx = _poly_norm_dx(x, dy, r1, r2, r3, s1 / n_cols, s2 / n_cols, s3 / n_cols, w1, w2, w3)
                    tl.store(DX + row * n_cols + start + cols, dx.to(DX.dtype.element_ty), mask=mask)
        dw3 += s3
        dw2 += s2
        dw1 += s1
        db += dy_sum
    tl.store(PARTIALS + pid * 4, dw3)
    tl.store(PARTIALS + pid * 4 + 1, dw2)
    tl.store(PARTIALS + pid * 4 + 2, dw1)
    tl.store(PARTIALS + pid * 4 + 3, db)


def poly_norm_block(profile: Any, n_cols: int) -> int:
    """Columns per step: the whole row when it fits ``profile.max_block``, else
    half of that, as a walked row keeps more blocks alive at once (the loaded
    ones and the running sums) and half-size blocks keep them within the
    on-chip memory the profile sized max_block for."""
    block = row_block(n_cols, profile)
    return block if block >= n_cols else max(MIN_BLOCK, profile.max_block // 2)


class PolyNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        X: torch.Tensor,
        W: torch.Tensor,
        B: torch.Tensor,
        eps: float = 1e-6,
        in_place: bool = True,
    ) -> torch.Tensor:
        x_rows = as_rows(X)
        n_rows, n_cols = x_rows.shape
        profile = device_profile(X.device)
        block = poly_norm_block(profile, n_cols)
        single_block = block >= n_cols
        y = torch.empty((n_rows, n_cols), dtype=X.dtype, device=X.device)
        rstd = torch.empty((n_rows, N_STATS), dtype=statistics_dtype(X.dtype), device=X.device)
        if x_rows.numel():
            launch(
                profile,
                _poly_norm_forward_kernel,
                profile.grid(n_rows),
                x_rows,
                x_rows.stride(0),
                y,
                W,
                B,
                rstd,
                n_rows,
                n_cols,
                eps,
                ACC=accumulator_dtype(X.dtype),
                BLOCK=block,
                SINGLE_BLOCK=single_block,
                # a row walked in blocks has two pipelined loops, each with its own buffers
                STAGES=pipeline_stages(profile, (1 if single_block else 2) * block * X.element_size()),
                num_warps=profile.num_warps(block),
            )
        ctx.save_for_backward(x_rows, W, B, rstd)
        ctx.x_shape = X.shape
        return shaped(y, X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> tuple[Any, ...]:
        x_rows, W, B, rstd = ctx.saved_tensors
        n_rows, n_cols = x_rows.shape
        needs_dx = ctx.needs_input_grad[0]
        profile = device_profile(x_rows.device)
        block = poly_norm_block(profile, n_cols)
        single_block = block >= n_cols
        grid = reduction_grid(profile, n_rows)
        dy_rows = as_rows(dY)
        dx = None
        if needs_dx:
            dx = torch.empty((n_rows, n_cols), dtype=x_rows.dtype, device=x_rows.device)
        partials = torch.zeros((grid, N_PARTIALS), dtype=rstd.dtype, device=x_rows.device)
        if x_rows.numel():
            launch(
                profile,
                _poly_norm_backward_kernel,
                grid,
                dy_rows,
                dy_rows.stride(0),
                dx if dx is not None else dy_rows,
                x_rows,
                x_rows.stride(0),
                W,
                rstd,
                partials,
                n_rows,
                n_cols,
                COMPUTE_DX=dx is not None,
                ACC=accumulator_dtype(x_rows.dtype),
                BLOCK=block,
                SINGLE_BLOCK=single_block,
                # Measured on an H200 (bf16, 8192 x 4096 and 2048 x 32768): the
                # backward is faster unpipelined
                STAGES=1,
                num_warps=profile.num_warps(block),
            )
        totals = partials.sum(0)
        dw = totals[:3].to(W.dtype) if ctx.needs_input_grad[1] else None
        # a copy: gradients returned together must not share storage (as operator outputs)
        db = totals[3].to(B.dtype, copy=True).reshape(B.shape) if ctx.needs_input_grad[2] else None
        if dx is not None:
            dx = shaped(dx, ctx.x_shape)
        return dx, dw, db, None, None
