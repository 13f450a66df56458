"""LayerNorm on the NPU: rows spread over the vector cores, UB-sized tiles
(math: :mod:`liger_kernel.ops.layer_norm`; statistics in fp32, y in x.dtype).

NPU constraints answered: one program per vector core (the grid never exceeds
65535) looping over its rows ``ROWS`` at a time (one when a row pitch is not
a multiple of 32 bytes: the A3 vector cores fault on such a 2-D tile); each
row is walked in ``BLOCK``-wide sub-blocks sized by the unified-buffer planner, so any H fits.
A row that fits one tile is loaded once; a wider one takes three forward
passes (mean, variance, output: the two-pass variance avoids the
cancellation of E[x^2] - mean^2). The backward makes two (row sums, then dx).
dW and dB are reduced per program (in the UB across steps when a row is one
tile) into (grid, H) fp32 buffers summed on the host: no atomics.
num_warps/num_stages are not used.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel_ascend.ops._common import as_rows, row_plan


@triton.jit
def _load_columns(P, cols, n_cols, TAIL: tl.constexpr):
    if TAIL:
        return tl.load(P + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
    else:
        return tl.load(P + cols).to(tl.float32)


@triton.jit
def _affine(n, W, B, cols, n_cols, HAS_B: tl.constexpr, TAIL: tl.constexpr):
    y = n * _load_columns(W, cols, n_cols, TAIL)[None, :]
    if HAS_B:
        y += _load_columns(B, cols, n_cols, TAIL)[None, :]
    return y


@triton.jit
def _tile_mask(row_mask, cols, n_cols, TAIL: tl.constexpr):
    """Mask of a (rows, block) tile: only the tail block compares columns (the
    vector cores have no integer compare: each one runs scalar)."""
    if TAIL:
        return row_mask[:, None] & (cols < n_cols)[None, :]
    else:
        return row_mask[:, None] & tl.full([1, cols.shape[0]], 1, tl.int1)


@triton.jit
def _load_tile(base, rows64, stride, mask, cols):
    return tl.load(base + rows64[:, None] * stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _row_sums(X, x_stride, rows64, row_mask, start, n_cols, TAIL: tl.constexpr, BLOCK: tl.constexpr):
    cols = start + tl.arange(0, BLOCK)
    return tl.sum(_load_tile(X, rows64, x_stride, _tile_mask(row_mask, cols, n_cols, TAIL), cols), axis=1)


@triton.jit
def _centred_squares(X, x_stride, rows64, row_mask, mean, start, n_cols, TAIL: tl.constexpr, BLOCK: tl.constexpr):
    cols = start + tl.arange(0, BLOCK)
    mask = _tile_mask(row_mask, cols, n_cols, TAIL)
    centred = _load_tile(X, rows64, x_stride, mask, cols) - mean[:, None]
    if TAIL:
        centred = tl.where(mask, centred, 0.0)
    return tl.sum(centred * centred, axis=1)


@triton.jit
def _forward_output(
    X, x_stride, Y, y_stride, W, B, rows64, row_mask, mean, rstd, start, n_cols,
    HAS_B: tl.constexpr, TAIL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    cols = start + tl.arange(0, BLOCK)
    mask = _tile_mask(row_mask, cols, n_cols, TAIL)
    x = _load_tile(X, rows64, x_stride, mask, cols)
    y = _affine((x - mean[:, None]) * rstd[:, None], W, B, cols, n_cols, HAS_B, TAIL)
    tl.store(Y + rows64[:, None] * y_stride + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _layer_norm_forward(
    X,
    x_stride,
    Y,
    y_stride,
    W,
    B,
    MEAN,
    RSTD,
    n_rows,
    n_cols,
    eps,
    HAS_B: tl.constexpr,
    SINGLE_BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    n_steps = tl.cdiv(n_rows, ROWS)
    if SINGLE_BLOCK:
        # one column compare per program, not per step
        cols = tl.arange(0, BLOCK)
        col_mask = cols < n_cols
    for step in tl.range(tl.program_id(0), n_steps, tl.num_programs(0)):
        rows = step * ROWS + tl.arange(0, ROWS)
        row_mask = rows < n_rows
        rows64 = rows.to(tl.int64)
        if SINGLE_BLOCK:
            # the row fits one tile: load it once, keep it in the UB for all three passes
            mask = row_mask[:, None] & col_mask[None, :]
            x = _load_tile(X, rows64, x_stride, mask, cols)
            mean = tl.sum(x, axis=1) / n_cols
            centred = tl.where(mask, x - mean[:, None], 0.0)
            rstd = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=1) / n_cols + eps)
            tl.store(MEAN + rows64, mean, mask=row_mask)
            tl.store(RSTD + rows64, rstd, mask=row_mask)
            y = centred * rstd[:, None] * tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
            if HAS_B:
                y += tl.load(B + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
            tl.store(Y + rows64[:, None] * y_stride + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
        else:
            # whole blocks below full_end, one masked tail block after them
            full_end = n_cols // BLOCK * BLOCK
            total = tl.zeros([ROWS], tl.float32)
            for start in tl.range(0, full_end, BLOCK):
                total += _row_sums(X, x_stride, rows64, row_mask, start, n_cols, False, BLOCK)
            if full_end < n_cols:
                total += _row_sums(X, x_stride, rows64, row_mask, full_end, n_cols, True, BLOCK)
            mean = total / n_cols
            squares = tl.zeros([ROWS], tl.float32)
            for start in tl.range(0, full_end, BLOCK):
                squares += _centred_squares(X, x_stride, rows64, row_mask, mean, start, n_cols, False, BLOCK)
            if full_end < n_cols:
                squares += _centred_squares(X, x_stride, rows64, row_mask, mean, full_end, n_cols, True, BLOCK)
            rstd = 1.0 / tl.sqrt(squares / n_cols + eps)
            tl.store(MEAN + rows64, mean, mask=row_mask)
            tl.store(RSTD + rows64, rstd, mask=row_mask)
            for start in tl.range(0, full_end, BLOCK):
                _forward_output(
                    X, x_stride, Y, y_stride, W, B, rows64, row_mask, mean, rstd, start, n_cols, HAS_B, False, BLOCK
                )  # fmt: skip
            if full_end < n_cols:
                _forward_output(
                    X, x_stride, Y, y_stride, W, B, rows64, row_mask, mean, rstd, full_end, n_cols, HAS_B, True, BLOCK
                )  # fmt: skip


@triton.jit
def _grad_sums(
    DY, dy_stride, X, x_stride, W, rows64, row_mask, mean, rstd, start, n_cols,
    TAIL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Row sums of g and g * n over one block (masked rows load mean = rstd = 0, so n = 0 there)."""
    cols = start + tl.arange(0, BLOCK)
    mask = _tile_mask(row_mask, cols, n_cols, TAIL)
    g = _load_tile(DY, rows64, dy_stride, mask, cols) * _load_columns(W, cols, n_cols, TAIL)[None, :]
    n = (_load_tile(X, rows64, x_stride, mask, cols) - mean[:, None]) * rstd[:, None]
    if TAIL:
        n = tl.where(mask, n, 0.0)
    return tl.sum(g, axis=1), tl.sum(g * n, axis=1)


@triton.jit
def _grad_output(
    DY, dy_stride, X, x_stride, DX, dx_stride, W, DW_PARTIAL, DB_PARTIAL, pid, rows64, row_mask, mean, rstd,
    g_mean, gn_mean, start, n_cols, TAIL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """dx of one block, and its dW and dB terms added to this program's partial rows."""
    cols = start + tl.arange(0, BLOCK)
    mask = _tile_mask(row_mask, cols, n_cols, TAIL)
    dy = _load_tile(DY, rows64, dy_stride, mask, cols)
    n = (_load_tile(X, rows64, x_stride, mask, cols) - mean[:, None]) * rstd[:, None]
    if TAIL:
        n = tl.where(mask, n, 0.0)
    dx = rstd[:, None] * (dy * _load_columns(W, cols, n_cols, TAIL)[None, :] - g_mean[:, None] - n * gn_mean[:, None])
    tl.store(DX + rows64[:, None] * dx_stride + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
    dw_row = DW_PARTIAL + pid.to(tl.int64) * n_cols + cols
    db_row = DB_PARTIAL + pid.to(tl.int64) * n_cols + cols
    if TAIL:
        col_mask = cols < n_cols
        tl.store(dw_row, tl.load(dw_row, mask=col_mask, other=0.0) + tl.sum(dy * n, axis=0), mask=col_mask)
        tl.store(db_row, tl.load(db_row, mask=col_mask, other=0.0) + tl.sum(dy, axis=0), mask=col_mask)
    else:
        tl.store(dw_row, tl.load(dw_row) + tl.sum(dy * n, axis=0))
        tl.store(db_row, tl.load(db_row) + tl.sum(dy, axis=0))


@triton.jit
def _layer_norm_backward(
    DY,
    dy_stride,
    X,
    x_stride,
    DX,
    dx_stride,
    W,
    MEAN,
    RSTD,
    DW_PARTIAL,
    DB_PARTIAL,
    n_rows,
    n_cols,
    SINGLE_BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    n_steps = tl.cdiv(n_rows, ROWS)
    full_end = n_cols // BLOCK * BLOCK
    if SINGLE_BLOCK:
        # a row that fits one block keeps this program's dW and dB in the UB across
        # steps; its column mask is computed once per program, not per step
        cols = tl.arange(0, BLOCK)
        col_mask = cols < n_cols
        dw_acc = tl.zeros([BLOCK], tl.float32)
        db_acc = tl.zeros([BLOCK], tl.float32)
    for step in tl.range(pid, n_steps, tl.num_programs(0)):
        rows = step * ROWS + tl.arange(0, ROWS)
        row_mask = rows < n_rows
        rows64 = rows.to(tl.int64)
        mean = tl.load(MEAN + rows64, mask=row_mask, other=0.0)
        rstd = tl.load(RSTD + rows64, mask=row_mask, other=0.0)
        if SINGLE_BLOCK:
            mask = row_mask[:, None] & col_mask[None, :]
            dy = _load_tile(DY, rows64, dy_stride, mask, cols)
            g = dy * tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
            n = tl.where(mask, (_load_tile(X, rows64, x_stride, mask, cols) - mean[:, None]) * rstd[:, None], 0.0)
            g_mean = tl.sum(g, axis=1) / n_cols
            gn_mean = tl.sum(g * n, axis=1) / n_cols
            dx = rstd[:, None] * (g - g_mean[:, None] - n * gn_mean[:, None])
            tl.store(DX + rows64[:, None] * dx_stride + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
            dw_acc += tl.sum(dy * n, axis=0)
            db_acc += tl.sum(dy, axis=0)
        else:
            g_sum = tl.zeros([ROWS], tl.float32)
            gn_sum = tl.zeros([ROWS], tl.float32)
            for start in tl.range(0, full_end, BLOCK):
                block_g, block_gn = _grad_sums(
                    DY, dy_stride, X, x_stride, W, rows64, row_mask, mean, rstd, start, n_cols, False, BLOCK
                )  # fmt: skip
                g_sum += block_g
                gn_sum += block_gn
            if full_end < n_cols:
                block_g, block_gn = _grad_sums(
                    DY, dy_stride, X, x_stride, W, rows64, row_mask, mean, rstd, full_end, n_cols, True, BLOCK
                )  # fmt: skip
                g_sum += block_g
                gn_sum += block_gn
            g_mean = g_sum / n_cols
            gn_mean = gn_sum / n_cols
            for start in tl.range(0, full_end, BLOCK):
                _grad_output(
                    DY, dy_stride, X, x_stride, DX, dx_stride, W, DW_PARTIAL, DB_PARTIAL, pid, rows64, row_mask,
                    mean, rstd, g_mean, gn_mean, start, n_cols, False, BLOCK,
                )  # fmt: skip
            if full_end < n_cols:
                _grad_output(
                    DY, dy_stride, X, x_stride, DX, dx_stride, W, DW_PARTIAL, DB_PARTIAL, pid, rows64, row_mask,
                    mean, rstd, g_mean, gn_mean, full_end, n_cols, True, BLOCK,
                )  # fmt: skip
    if SINGLE_BLOCK:
        tl.store(DW_PARTIAL + pid.to(tl.int64) * n_cols + cols, dw_acc, mask=col_mask)
        tl.store(DB_PARTIAL + pid.to(tl.int64) * n_cols + cols, db_acc, mask=col_mask)


class LayerNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, X: torch.Tensor, W: torch.Tensor, B: torch.Tensor | None, eps: float) -> torch.Tensor:
        x = as_rows(X)
        n_rows, n_cols = x.shape
        y = torch.empty((n_rows, n_cols), dtype=X.dtype, device=X.device)
        mean = torch.empty(n_rows, dtype=torch.float32, device=X.device)
        rstd = torch.empty(n_rows, dtype=torch.float32, device=X.device)
        if n_rows:
            variant = dict(HAS_B=B is not None)
            plan = row_plan(_layer_norm_forward, n_rows, n_cols, X.dtype, X.device, variant, tiled=(x, y))
            _layer_norm_forward[(plan.grid,)](
                x, x.stride(0), y, y.stride(0), W, B if B is not None else W, mean, rstd, n_rows, n_cols, float(eps),
                **variant, SINGLE_BLOCK=plan.sub_blocks == 1, ROWS=plan.rows_per_step, BLOCK=plan.block,
            )  # fmt: skip
        ctx.save_for_backward(x, W, B, mean, rstd)
        ctx.shape = X.shape
        return y.view(X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> tuple[Any, ...]:
        x, W, B, mean, rstd = ctx.saved_tensors
        n_rows, n_cols = x.shape
        dy = as_rows(dY)
        dx = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
        if n_rows:
            # one row per step: with several rows bishengir allocates far more UB than the single-row
            # cost grows by (193220 bytes at 2 x 512, against 54 KB fitted from the other tiles), which
            # the compile lane caught; single rows are measured at every block width
            plan = row_plan(
                _layer_norm_backward, n_rows, n_cols, x.dtype, x.device, {}, max_rows_per_step=1, tiled=(dy, x, dx)
            )
            dw_partial = torch.zeros((plan.grid, n_cols), dtype=torch.float32, device=x.device)
            db_partial = torch.zeros((plan.grid, n_cols), dtype=torch.float32, device=x.device)
            _layer_norm_backward[(plan.grid,)](
                dy, dy.stride(0), x, x.stride(0), dx, dx.stride(0), W, mean, rstd, dw_partial, db_partial,
                n_rows, n_cols, SINGLE_BLOCK=plan.sub_blocks == 1, ROWS=plan.rows_per_step, BLOCK=plan.block,
            )  # fmt: skip
            dW, dB = dw_partial.sum(0), db_partial.sum(0)
        else:
            dW = dB = torch.zeros(n_cols, dtype=torch.float32, device=x.device)
        dB = dB.to(B.dtype) if B is not None and ctx.needs_input_grad[2] else None
        return dx.view(ctx.shape), dW.to(W.dtype), dB, None
