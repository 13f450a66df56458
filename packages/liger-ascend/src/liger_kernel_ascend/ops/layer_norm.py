"""LayerNorm on the NPU: rows spread over the vector cores, UB-sized tiles.

Forward, per row x of width H (see liger_kernel.ops.layer_norm):
    mean = sum(x) / H;  rstd = 1 / sqrt(sum((x - mean)**2) / H + eps)
    y = (x - mean) * rstd * W + B          statistics in fp32, y in x.dtype
Backward, with n = (x - mean) * rstd and g = dy * W:
    dx = rstd * (g - mean(g) - n * mean(g * n))
    dW = sum over rows of dy * n;  dB = sum over rows of dy

NPU constraints answered: one program per vector core (the grid never exceeds
65535) looping over its rows ``ROWS`` at a time; each row is walked in
``BLOCK``-wide sub-blocks sized by the unified-buffer planner, so any H fits.
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
def _affine(n, W, B, cols, n_cols, HAS_B: tl.constexpr):
    col_mask = cols < n_cols
    y = n * tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
    if HAS_B:
        y += tl.load(B + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
    return y


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
    for step in tl.range(tl.program_id(0), n_steps, tl.num_programs(0)):
        rows = step * ROWS + tl.arange(0, ROWS)
        row_mask = rows < n_rows
        rows64 = rows.to(tl.int64)
        if SINGLE_BLOCK:
            # the row fits one tile: load it once, keep it in the UB for all three passes
            cols = tl.arange(0, BLOCK)
            mask = row_mask[:, None] & (cols < n_cols)[None, :]
            x = tl.load(X + rows64[:, None] * x_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            mean = tl.sum(x, axis=1) / n_cols
            centred = tl.where(mask, x - mean[:, None], 0.0)
            rstd = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=1) / n_cols + eps)
            tl.store(MEAN + rows64, mean, mask=row_mask)
            tl.store(RSTD + rows64, rstd, mask=row_mask)
            y = _affine(centred * rstd[:, None], W, B, cols, n_cols, HAS_B)
            tl.store(Y + rows64[:, None] * y_stride + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
        else:
            total = tl.zeros([ROWS], tl.float32)
            for start in tl.range(0, n_cols, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                mask = row_mask[:, None] & (cols < n_cols)[None, :]
                x = tl.load(X + rows64[:, None] * x_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
                total += tl.sum(x, axis=1)
            mean = total / n_cols
            squares = tl.zeros([ROWS], tl.float32)
            for start in tl.range(0, n_cols, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                mask = row_mask[:, None] & (cols < n_cols)[None, :]
                x = tl.load(X + rows64[:, None] * x_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
                centred = tl.where(mask, x - mean[:, None], 0.0)
                squares += tl.sum(centred * centred, axis=1)
            rstd = 1.0 / tl.sqrt(squares / n_cols + eps)
            tl.store(MEAN + rows64, mean, mask=row_mask)
            tl.store(RSTD + rows64, rstd, mask=row_mask)
            for start in tl.range(0, n_cols, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                mask = row_mask[:, None] & (cols < n_cols)[None, :]
                x = tl.load(X + rows64[:, None] * x_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
                y = _affine((x - mean[:, None]) * rstd[:, None], W, B, cols, n_cols, HAS_B)
                tl.store(Y + rows64[:, None] * y_stride + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)


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
    # a row that fits one block keeps this program's dW and dB in the UB across steps
    dw_acc = tl.zeros([BLOCK], tl.float32)
    db_acc = tl.zeros([BLOCK], tl.float32)
    for step in tl.range(pid, n_steps, tl.num_programs(0)):
        rows = step * ROWS + tl.arange(0, ROWS)
        row_mask = rows < n_rows
        rows64 = rows.to(tl.int64)
        mean = tl.load(MEAN + rows64, mask=row_mask, other=0.0)
        rstd = tl.load(RSTD + rows64, mask=row_mask, other=0.0)
        g_sum = tl.zeros([ROWS], tl.float32)
        gn_sum = tl.zeros([ROWS], tl.float32)
        for start in tl.range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            col_mask = cols < n_cols
            mask = row_mask[:, None] & col_mask[None, :]
            dy = tl.load(DY + rows64[:, None] * dy_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            x = tl.load(X + rows64[:, None] * x_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            w = tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)
            g = dy * w[None, :]
            n = tl.where(mask, (x - mean[:, None]) * rstd[:, None], 0.0)
            g_sum += tl.sum(g, axis=1)
            gn_sum += tl.sum(g * n, axis=1)
        g_mean = g_sum / n_cols
        gn_mean = gn_sum / n_cols
        for start in tl.range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            col_mask = cols < n_cols
            mask = row_mask[:, None] & col_mask[None, :]
            dy = tl.load(DY + rows64[:, None] * dy_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            x = tl.load(X + rows64[:, None] * x_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            w = tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)
            n = tl.where(mask, (x - mean[:, None]) * rstd[:, None], 0.0)
            dx = rstd[:, None] * (dy * w[None, :] - g_mean[:, None] - n * gn_mean[:, None])
            tl.store(DX + rows64[:, None] * dx_stride + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
            if SINGLE_BLOCK:
                dw_acc += tl.sum(dy * n, axis=0)
                db_acc += tl.sum(dy, axis=0)
            else:
                dw_row = DW_PARTIAL + pid.to(tl.int64) * n_cols + cols
                tl.store(dw_row, tl.load(dw_row, mask=col_mask, other=0.0) + tl.sum(dy * n, axis=0), mask=col_mask)
                db_row = DB_PARTIAL + pid.to(tl.int64) * n_cols + cols
                tl.store(db_row, tl.load(db_row, mask=col_mask, other=0.0) + tl.sum(dy, axis=0), mask=col_mask)
    if SINGLE_BLOCK:
        cols = tl.arange(0, BLOCK)
        tl.store(DW_PARTIAL + pid.to(tl.int64) * n_cols + cols, dw_acc, mask=cols < n_cols)
        tl.store(DB_PARTIAL + pid.to(tl.int64) * n_cols + cols, db_acc, mask=cols < n_cols)


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
            plan = row_plan(_layer_norm_forward, n_rows, n_cols, X.dtype, X.device, variant)
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
            plan = row_plan(_layer_norm_backward, n_rows, n_cols, x.dtype, x.device, {})
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
