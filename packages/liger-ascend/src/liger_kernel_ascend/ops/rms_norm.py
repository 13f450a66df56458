"""RMSNorm on the NPU: rows spread over the vector cores, UB-sized tiles
(math and casting modes: :mod:`liger_kernel.ops.rms_norm`).

NPU constraints answered: the grid is one program per vector core (never more
than 65535) and each program loops over its rows, ``ROWS`` at a time (one
when a row pitch is not a multiple of 32 bytes: the A3 vector cores fault on
such a 2-D tile). A row that fits one unified-buffer tile is loaded once; a wider one is walked in
``BLOCK``-wide sub-blocks, a first pass for the statistics and a second for
the output, so the live tiles stay inside the UB budget of
:mod:`liger_kernel_ascend.tiling` whatever H is.
num_warps/num_stages are not passed: the Ascend compiler ignores them.
dW is reduced per program into a (grid, H) fp32 buffer, summed on the host,
so no atomics are needed.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel_ascend.ops._common import as_rows, row_plan

LLAMA, GEMMA, NONE = 0, 1, 2
CASTING = {"llama": LLAMA, "gemma": GEMMA, "none": NONE}


@triton.jit
def _load_input(X, x_stride, R, r_stride, S, s_stride, rows64, cols, mask, HAS_RESIDUAL: tl.constexpr):
    """A tile of the rows to normalize: X, or with a residual X + R (in X's
    dtype), which is also stored to S."""
    x = tl.load(X + rows64[:, None] * x_stride + cols[None, :], mask=mask, other=0.0)
    if HAS_RESIDUAL:
        r = tl.load(R + rows64[:, None] * r_stride + cols[None, :], mask=mask, other=0.0)
        x = (x.to(tl.float32) + r.to(tl.float32)).to(x.dtype)
        tl.store(S + rows64[:, None] * s_stride + cols[None, :], x, mask=mask)
    return x


@triton.jit
def _sum_squares(x, CAST: tl.constexpr):
    xf = x.to(tl.float32)
    xx = xf * xf
    if CAST == 2:
        xx = xx.to(x.dtype).to(tl.float32)
    return tl.sum(xx, axis=1)


@triton.jit
def _rstd(squares, n_cols, eps, X, CAST: tl.constexpr):
    rstd = 1.0 / tl.sqrt(squares / n_cols + eps)
    if CAST == 2:
        rstd = rstd.to(X.dtype.element_ty).to(tl.float32)
    return rstd


@triton.jit
def _normalized(x, rstd, W, cols, col_mask, offset, CAST: tl.constexpr, HAS_W: tl.constexpr):
    n = x.to(tl.float32) * rstd[:, None]
    if CAST != 1:
        # llama and none round the normalized row before the weight
        n = n.to(x.dtype).to(tl.float32)
    if HAS_W:
        w = tl.load(W + cols, mask=col_mask, other=0.0)
        if CAST == 1:
            scale = offset + w.to(tl.float32)
        else:
            scale = (offset + w.to(tl.float32)).to(w.dtype).to(tl.float32)
        n = n * scale[None, :]
    return n


@triton.jit
def _rms_norm_forward(
    X,
    x_stride,
    R,
    r_stride,
    S,
    s_stride,
    Y,
    y_stride,
    W,
    RSTD,
    n_rows,
    n_cols,
    eps,
    offset,
    CAST: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
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
            # the row fits one tile: load it once, keep it in the UB for both passes
            cols = tl.arange(0, BLOCK)
            col_mask = cols < n_cols
            mask = row_mask[:, None] & col_mask[None, :]
            x = _load_input(X, x_stride, R, r_stride, S, s_stride, rows64, cols, mask, HAS_RESIDUAL)
            rstd = _rstd(_sum_squares(x, CAST), n_cols, eps, X, CAST)
            tl.store(RSTD + rows64, rstd, mask=row_mask)
            y = _normalized(x, rstd, W, cols, col_mask, offset, CAST, HAS_W)
            tl.store(Y + rows64[:, None] * y_stride + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
        else:
            squares = tl.zeros([ROWS], tl.float32)
            for start in tl.range(0, n_cols, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                mask = row_mask[:, None] & (cols < n_cols)[None, :]
                x = _load_input(X, x_stride, R, r_stride, S, s_stride, rows64, cols, mask, HAS_RESIDUAL)
                squares += _sum_squares(x, CAST)
            rstd = _rstd(squares, n_cols, eps, X, CAST)
            tl.store(RSTD + rows64, rstd, mask=row_mask)
            for start in tl.range(0, n_cols, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                col_mask = cols < n_cols
                mask = row_mask[:, None] & col_mask[None, :]
                if HAS_RESIDUAL:
                    # pass 2 normalizes the sum that pass 1 stored
                    x = tl.load(S + rows64[:, None] * s_stride + cols[None, :], mask=mask, other=0.0)
                else:
                    x = tl.load(X + rows64[:, None] * x_stride + cols[None, :], mask=mask, other=0.0)
                y = _normalized(x, rstd, W, cols, col_mask, offset, CAST, HAS_W)
                tl.store(Y + rows64[:, None] * y_stride + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _rms_norm_backward(
    DY,
    dy_stride,
    X,
    x_stride,
    DX,
    dx_stride,
    DRES,
    dres_stride,
    W,
    RSTD,
    DW_PARTIAL,
    n_rows,
    n_cols,
    offset,
    CAST: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_DRES: tl.constexpr,
    SINGLE_BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    n_steps = tl.cdiv(n_rows, ROWS)
    # a row that fits one block keeps this program's dW in the UB across steps
    dw_acc = tl.zeros([BLOCK], tl.float32)
    for step in tl.range(pid, n_steps, tl.num_programs(0)):
        rows = step * ROWS + tl.arange(0, ROWS)
        row_mask = rows < n_rows
        rows64 = rows.to(tl.int64)
        rstd = tl.load(RSTD + rows64, mask=row_mask, other=0.0)
        # pass 1: mean(g * n) per row
        gn = tl.zeros([ROWS], tl.float32)
        for start in tl.range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            col_mask = cols < n_cols
            mask = row_mask[:, None] & col_mask[None, :]
            dy = tl.load(DY + rows64[:, None] * dy_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            x = tl.load(X + rows64[:, None] * x_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            if HAS_W:
                w = tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)
                dy = dy * (offset + w)[None, :]
            gn += tl.sum(dy * x, axis=1)
        gn = gn * rstd / n_cols
        # pass 2: dx, and this program's share of dW
        for start in tl.range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            col_mask = cols < n_cols
            mask = row_mask[:, None] & col_mask[None, :]
            dy = tl.load(DY + rows64[:, None] * dy_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            x = tl.load(X + rows64[:, None] * x_stride + cols[None, :], mask=mask, other=0.0)
            n = x.to(tl.float32) * rstd[:, None]
            g = dy
            if HAS_W:
                w = tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)
                g = dy * (offset + w)[None, :]
                if CAST == 1:
                    n_for_w = n
                else:
                    n_for_w = n.to(x.dtype).to(tl.float32)
                if SINGLE_BLOCK:
                    dw_acc += tl.sum(dy * n_for_w, axis=0)
                else:
                    partial = DW_PARTIAL + pid.to(tl.int64) * n_cols + cols
                    tl.store(
                        partial,
                        tl.load(partial, mask=col_mask, other=0.0) + tl.sum(dy * n_for_w, axis=0),
                        mask=col_mask,
                    )
            dx = rstd[:, None] * (g - n * gn[:, None])
            if HAS_DRES:
                # the residual stream's own gradient joins dS
                dx += tl.load(DRES + rows64[:, None] * dres_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            tl.store(DX + rows64[:, None] * dx_stride + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)

    if HAS_W:
        if SINGLE_BLOCK:
            cols = tl.arange(0, BLOCK)
            tl.store(DW_PARTIAL + pid.to(tl.int64) * n_cols + cols, dw_acc, mask=cols < n_cols)


def rms_norm_forward(
    x: torch.Tensor,
    W: torch.Tensor | None,
    eps: float,
    offset: float,
    cast: int,
    residual: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, rstd, normalized input) for 2-D ``x``; with ``residual`` the input
    is x + residual, returned as the third value (else ``x`` itself)."""
    n_rows, n_cols = x.shape
    y = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    rstd = torch.empty(n_rows, dtype=torch.float32, device=x.device)
    s = x if residual is None else torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    r = x if residual is None else residual
    if n_rows:
        variant = dict(CAST=cast, HAS_W=W is not None, HAS_RESIDUAL=residual is not None)
        plan = row_plan(_rms_norm_forward, n_rows, n_cols, x.dtype, x.device, variant, tiled=(x, r, s, y))
        _rms_norm_forward[(plan.grid,)](
            x, x.stride(0), r, r.stride(0), s, s.stride(0), y, y.stride(0), W if W is not None else x, rstd,
            n_rows, n_cols, float(eps), float(offset),
            **variant, SINGLE_BLOCK=plan.sub_blocks == 1, ROWS=plan.rows_per_step, BLOCK=plan.block,
        )  # fmt: skip
    return y, rstd, s


def rms_norm_backward(
    dy: torch.Tensor,
    x: torch.Tensor,
    W: torch.Tensor | None,
    rstd: torch.Tensor,
    offset: float,
    cast: int,
    need_dw: bool,
    dres: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(dx in x.dtype, dW in W.dtype or None); ``dres`` is added to dx."""
    n_rows, n_cols = x.shape
    dx = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    if not n_rows:
        return dx, (torch.zeros_like(W) if W is not None and need_dw else None)
    tiled = (dy, x, dx) if dres is None else (dy, x, dx, dres)
    has_w = W is not None
    variant = dict(CAST=cast, HAS_W=has_w, HAS_DRES=dres is not None)
    plan = row_plan(_rms_norm_backward, n_rows, n_cols, x.dtype, x.device, variant, tiled=tiled)
    partial = torch.zeros((plan.grid, n_cols) if has_w else (1,), dtype=torch.float32, device=x.device)
    _rms_norm_backward[(plan.grid,)](
        dy, dy.stride(0), x, x.stride(0), dx, dx.stride(0),
        dres if dres is not None else dy, dres.stride(0) if dres is not None else 0,
        W if has_w else x, rstd, partial, n_rows, n_cols, float(offset),
        **variant, SINGLE_BLOCK=plan.sub_blocks == 1, ROWS=plan.rows_per_step, BLOCK=plan.block,
    )  # fmt: skip
    dW = partial.sum(0).to(W.dtype) if has_w and need_dw else None
    return dx, dW


class RMSNormFunction(torch.autograd.Function):
    """RMSNorm with every option of ``LigerRMSNormFunction``.

    ``in_place=True`` allows writing dx over dy; this kernel always writes dx
    to a fresh buffer, because dy may be a tensor the caller still holds.
    ``row_mode`` is a GPU kernel hint with no meaning on the NPU."""

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
        x = as_rows(X)
        cast = CASTING[casting_mode]
        y, rstd, _ = rms_norm_forward(x, W, eps, offset, cast)
        ctx.save_for_backward(x, W, rstd)
        ctx.cast, ctx.offset, ctx.shape = cast, float(offset), X.shape
        return y.view(X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> tuple[Any, ...]:
        x, W, rstd = ctx.saved_tensors
        dx, dW = rms_norm_backward(as_rows(dY), x, W, rstd, ctx.offset, ctx.cast, ctx.needs_input_grad[1])
        return dx.view(ctx.shape), dW, None, None, None, None, None
