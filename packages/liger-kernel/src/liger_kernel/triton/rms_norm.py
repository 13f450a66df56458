"""RMSNorm, portable Triton kernels (math: :mod:`liger_kernel.ops.rms_norm`).

Precision: as the contract's casting modes, except that "none" still
accumulates the sum of squares in fp32. The kernels optionally add a residual
first (S = X + R, stored), which is how :mod:`liger_kernel.triton.fused_add_rms_norm`
reuses them; the backward then adds dS_out to dx.

Layout: a persistent grid of ``profile.grid(rows)`` programs, each walking rows
``pid, pid + grid, ...``. A row no wider than ``profile.max_block`` is loaded
once and kept in registers; a wider row is walked in blocks (one pass for the
statistics, one for the output). The forward stores y and rstd only.

The backward reads X, dY and rstd once and writes dx. It runs one program per
compute unit, each summing its rows' dW contributions in fp32 registers. With
rows in registers two programs add their sums into one zeroed partial row
(atomically: a sum of two terms onto zero is the same in either order, so dW
stays deterministic), which halves the partial buffer (1 MiB at width 4096 on
132 SMs: the difference between meeting the memory target and not); a row
walked in blocks keeps a partial row per program, which its first row stores
and later rows add to. :mod:`liger_kernel.triton._partials` adds the partial
rows up and rounds to W's dtype in one launch.

dx always gets its own buffer, whatever ``in_place`` says (see the op
contract): dY may be a tensor the caller or another branch of the graph
still reads.
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

CASTING_MODES = {"llama": 0, "gemma": 1, "none": 2}
LLAMA: tl.constexpr = tl.constexpr(0)
GEMMA: tl.constexpr = tl.constexpr(1)


@triton.jit
def _normalize(x, rstd, w, offset, MODE: tl.constexpr, HAS_WEIGHT: tl.constexpr, ACC: tl.constexpr):
    """y for one block of x (storage dtype), in the precision of the casting mode.

    Arithmetic runs in ACC; a step the mode does in x.dtype is rounded to
    x.dtype right after it (same result, and the Triton interpreter does not
    do 16-bit float arithmetic correctly).
    """
    if MODE == LLAMA:
        y = (x.to(ACC) * rstd).to(x.dtype).to(ACC)
        if HAS_WEIGHT:
            y = y * (offset + w.to(ACC)).to(w.dtype).to(ACC)
    elif MODE == GEMMA:
        y = x.to(ACC) * rstd
        if HAS_WEIGHT:
            y = y * (offset + w.to(ACC))
    else:
        y = (x.to(ACC) * rstd.to(x.dtype).to(ACC)).to(x.dtype).to(ACC)
        if HAS_WEIGHT:
            y = y * (offset + w.to(ACC)).to(x.dtype).to(ACC)
    return y


@triton.jit
def _rms_norm_forward_kernel(
    X,
    x_row_stride,
    R,
    r_row_stride,
    S,
    Y,
    W,
    RSTD,
    n_rows,
    n_cols,
    eps,
    offset,
    MODE: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE_BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    if SINGLE_BLOCK:
        mask = cols < n_cols
        w = tl.load(W + cols, mask=mask, other=0.0) if HAS_WEIGHT else 0.0
        for row in tl.range(pid, n_rows, tl.num_programs(0), num_stages=STAGES):
            x = tl.load(X + row * x_row_stride + cols, mask=mask, other=0.0)
            if HAS_RESIDUAL:
                r = tl.load(R + row * r_row_stride + cols, mask=mask, other=0.0)
                x = (x.to(ACC) + r.to(ACC)).to(x.dtype)
                tl.store(S + row * n_cols + cols, x, mask=mask)
            xa = x.to(ACC)
            rstd = 1.0 / tl.sqrt(tl.sum(xa * xa, axis=0) / n_cols + eps)
            tl.store(RSTD + row, rstd)
            y = _normalize(x, rstd, w, offset, MODE, HAS_WEIGHT, ACC)
            tl.store(Y + row * n_cols + cols, y.to(Y.dtype.element_ty), mask=mask)
    else:
        for row in tl.range(pid, n_rows, tl.num_programs(0)):
            sum_sq = tl.zeros([BLOCK], dtype=ACC)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0)
                if HAS_RESIDUAL:
                    r = tl.load(R + row * r_row_stride + start + cols, mask=mask, other=0.0)
                    x = (x.to(ACC) + r.to(ACC)).to(x.dtype)
                    tl.store(S + row * n_cols + start + cols, x, mask=mask)
                xa = x.to(ACC)
                sum_sq += xa * xa
            rstd = 1.0 / tl.sqrt(tl.sum(sum_sq, axis=0) / n_cols + eps)
            tl.store(RSTD + row, rstd)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                if HAS_RESIDUAL:
                    x = tl.load(S + row * n_cols + start + cols, mask=mask, other=0.0)
                else:
                    x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0)
                w = tl.load(W + start + cols, mask=mask, other=0.0) if HAS_WEIGHT else 0.0
                y = _normalize(x, rstd, w, offset, MODE, HAS_WEIGHT, ACC)
                tl.store(Y + row * n_cols + start + cols, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _row_grads(x, dy, w, rstd, offset, MODE: tl.constexpr, HAS_WEIGHT: tl.constexpr, ACC: tl.constexpr):
    """(n as multiplied by W, g = dy * (offset + W)) for one block, in ACC."""
    n = x.to(ACC) * rstd
    if MODE == LLAMA:
        n = n.to(x.dtype).to(ACC)
    g = dy.to(ACC)
    if HAS_WEIGHT:
        g = g * (offset + w.to(ACC))
    return n, g


@triton.jit
def _rms_norm_backward_kernel(
    DY,
    dy_row_stride,
    DX,
    DS,
    ds_row_stride,
    X,
    x_row_stride,
    W,
    RSTD,
    DW_PARTIAL,
    n_rows,
    n_cols,
    offset,
    MODE: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    HAS_RESIDUAL_GRAD: tl.constexpr,
    COMPUTE_DX: tl.constexpr,
    COMPUTE_DW: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE_BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    if SINGLE_BLOCK:
        mask = cols < n_cols
        w = tl.load(W + cols, mask=mask, other=0.0) if HAS_WEIGHT else 0.0
        dw_sum = tl.zeros([BLOCK], dtype=ACC)
        for row in tl.range(pid, n_rows, tl.num_programs(0), num_stages=STAGES):
            x = tl.load(X + row * x_row_stride + cols, mask=mask, other=0.0)
            dy = tl.load(DY + row * dy_row_stride + cols, mask=mask, other=0.0)
            rstd = tl.load(RSTD + row)
            n, g = _row_grads(x, dy, w, rstd, offset, MODE, HAS_WEIGHT, ACC)
            if COMPUTE_DX:
                dx = rstd * (g - n * (tl.sum(g * n, axis=0) / n_cols))
                if HAS_RESIDUAL_GRAD:
                    dx += tl.load(DS + row * ds_row_stride + cols, mask=mask, other=0.0).to(ACC)
                tl.store(DX + row * n_cols + cols, dx.to(DX.dtype.element_ty), mask=mask)
            if COMPUTE_DW:
                dw_sum += dy.to(ACC) * n
        if COMPUTE_DW:
            # programs 2p and 2p + 1 share partial row p (zeroed)
            tl.atomic_add(DW_PARTIAL + (pid // 2) * n_cols + cols, dw_sum, mask=mask)
    else:
        # Each program owns its partial row: the read-modify-write below races
        # with nobody, and its first row (row == pid) stores without reading.
        for row in tl.range(pid, n_rows, tl.num_programs(0)):
            rstd = tl.load(RSTD + row)
            mean_gn = 0.0
            if COMPUTE_DX:
                gn_sum = tl.zeros([BLOCK], dtype=ACC)
                for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                    mask = start + cols < n_cols
                    x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0)
                    dy = tl.load(DY + row * dy_row_stride + start + cols, mask=mask, other=0.0)
                    w = tl.load(W + start + cols, mask=mask, other=0.0) if HAS_WEIGHT else 0.0
                    n, g = _row_grads(x, dy, w, rstd, offset, MODE, HAS_WEIGHT, ACC)
                    gn_sum += g * n
                mean_gn = tl.sum(gn_sum, axis=0) / n_cols
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0)
                dy = tl.load(DY + row * dy_row_stride + start + cols, mask=mask, other=0.0)
                w = tl.load(W + start + cols, mask=mask, other=0.0) if HAS_WEIGHT else 0.0
                n, g = _row_grads(x, dy, w, rstd, offset, MODE, HAS_WEIGHT, ACC)
                if COMPUTE_DX:
                    dx = rstd * (g - n * mean_gn)
                    if HAS_RESIDUAL_GRAD:
                        dx += tl.load(DS + row * ds_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                    tl.store(DX + row * n_cols + start + cols, dx.to(DX.dtype.element_ty), mask=mask)
                if COMPUTE_DW:
                    partial = DW_PARTIAL + pid * n_cols + start + cols
                    contribution = dy.to(ACC) * n
                    if row != pid:
                        contribution += tl.load(partial, mask=mask, other=0.0)
                    tl.store(partial, contribution, mask=mask)


def rms_norm_forward(
    x_rows: torch.Tensor,
    W: torch.Tensor | None,
    eps: float,
    offset: float,
    mode: int,
    residual_rows: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(Y, RSTD, S) for 2-D rows; S = x + residual when a residual is given, else None."""
    n_rows, n_cols = x_rows.shape
    profile = device_profile(x_rows.device)
    plan = row_launch(profile, n_rows, n_cols)
    # a row walked in blocks has two pipelined loops, each with its own buffers
    loops = 1 if plan.block >= n_cols else 2
    step_bytes = loops * plan.block * x_rows.element_size() * (1 if residual_rows is None else 2)
    y = torch.empty((n_rows, n_cols), dtype=x_rows.dtype, device=x_rows.device)
    rstd = torch.empty(n_rows, dtype=statistics_dtype(x_rows.dtype), device=x_rows.device)
    s = torch.empty_like(y) if residual_rows is not None else None
    launch(
        profile,
        _rms_norm_forward_kernel,
        plan.grid,
        x_rows,
        x_rows.stride(0),
        residual_rows if residual_rows is not None else x_rows,
        residual_rows.stride(0) if residual_rows is not None else 0,
        s if s is not None else y,
        y,
        W if W is not None else x_rows,
        rstd,
        n_rows,
        n_cols,
        eps,
        offset,
        MODE=mode,
        HAS_WEIGHT=W is not None,
        HAS_RESIDUAL=residual_rows is not None,
        ACC=accumulator_dtype(x_rows.dtype),
        BLOCK=plan.block,
        SINGLE_BLOCK=plan.block >= n_cols,
        STAGES=pipeline_stages(profile, step_bytes),
        num_warps=plan.num_warps,
    )
    return y, rstd, s


def rms_norm_backward(
    dy: torch.Tensor,
    x_rows: torch.Tensor,
    W: torch.Tensor | None,
    rstd: torch.Tensor,
    offset: float,
    mode: int,
    needs_dx: bool,
    needs_dw: bool,
    ds: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(dX rows, dW) for 2-D rows; ``ds`` is a gradient added to dX (the fused
    residual's). Neither ``dy`` nor ``ds`` is written."""
    n_rows, n_cols = x_rows.shape
    profile = device_profile(x_rows.device)
    block = row_block(n_cols, profile)
    grid = reduction_grid(profile, n_rows)
    dy_rows = as_rows(dy)
    dx = None
    if needs_dx:
        dx = torch.empty((n_rows, n_cols), dtype=x_rows.dtype, device=x_rows.device)
    needs_dw = needs_dw and W is not None
    single_block = block >= n_cols
    dw_partial = None
    if needs_dw and single_block:
        dw_partial = torch.zeros((1, (grid + 1) // 2, n_cols), dtype=rstd.dtype, device=x_rows.device)
    elif needs_dw:
        dw_partial = torch.empty((1, grid, n_cols), dtype=rstd.dtype, device=x_rows.device)
    ds_rows = as_rows(ds) if ds is not None else None
    loops = 1 if single_block else 2
    step_bytes = loops * block * sum(t.element_size() for t in (x_rows, dy_rows, ds_rows) if t is not None)
    launch(
        profile,
        _rms_norm_backward_kernel,
        grid,
        dy_rows,
        dy_rows.stride(0),
        dx if dx is not None else dy_rows,
        ds_rows if ds_rows is not None else dy_rows,
        ds_rows.stride(0) if ds_rows is not None else 0,
        x_rows,
        x_rows.stride(0),
        W if W is not None else x_rows,
        rstd,
        dw_partial if dw_partial is not None else rstd,
        n_rows,
        n_cols,
        offset,
        MODE=mode,
        HAS_WEIGHT=W is not None,
        HAS_RESIDUAL_GRAD=ds_rows is not None,
        COMPUTE_DX=dx is not None,
        COMPUTE_DW=needs_dw,
        ACC=accumulator_dtype(x_rows.dtype),
        BLOCK=block,
        SINGLE_BLOCK=single_block,
        STAGES=pipeline_stages(profile, step_bytes),
        num_warps=profile.num_warps(block),
    )
    dw = sum_partials(dw_partial, (W.dtype,))[0] if dw_partial is not None else None
    return dx, dw


class RMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        X: torch.Tensor,
        W: torch.Tensor | None,
        eps: float,
        offset: float = 0.0,
        casting_mode: str = "llama",
        in_place: bool = True,
        row_mode: Any = None,
    ) -> torch.Tensor:
        mode = CASTING_MODES[casting_mode]
        x_rows = as_rows(X)
        y, rstd, _ = rms_norm_forward(x_rows, W, eps, offset, mode)
        ctx.save_for_backward(x_rows, W, rstd)
        ctx.offset, ctx.mode, ctx.x_shape = offset, mode, X.shape
        return shaped(y, X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> tuple[Any, ...]:
        x_rows, W, rstd = ctx.saved_tensors
        dx, dw = rms_norm_backward(
            dY,
            x_rows,
            W,
            rstd,
            ctx.offset,
            ctx.mode,
            ctx.needs_input_grad[0],
            ctx.needs_input_grad[1],
        )
        if dx is not None:
            dx = shaped(dx, ctx.x_shape)
        return dx, dw, None, None, None, None, None
