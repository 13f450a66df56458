"""Modulated RMSNorm, portable Triton kernels (math: :mod:`liger_kernel.ops.modulated_rms_norm`).

The RMSNorm part is :mod:`liger_kernel.triton.rms_norm`'s: the same row
normalization (``_normalize``, the casting modes) and backward terms
(``_row_grads``); the modulation is applied to the unrounded r in fp32 and y is
rounded once. Row i reads modulation row i // (N / M).

Forward: a persistent grid of ``profile.grid(rows)`` programs walking rows
``pid, pid + grid, ...``, a row in registers when it fits ``profile.max_block``
and walked in blocks otherwise; it stores y and rstd only.

Backward: the work is cut into items, each a contiguous run of rows within one
modulation row (its group of N / M rows is split into C chunks so that there
are about as many items as programs of a reduction grid: M = 1 gives C chunks
of the whole batch, M = N one row per item). A program walks items ``pid, pid
+ grid, ...``, writes dx, adds the item's dscale and dshift terms into the
item's own partial row and its dW terms into the program's partial row, so no
two programs write one address and the result does not depend on scheduling
(no atomics). With rows in registers the partial rows are stored once; a row
walked in blocks adds into zeroed partials. The partials are then summed over
the chunks (and over the programs for dW, by :mod:`liger_kernel.triton._partials`)
and rounded to each input's dtype; with one chunk per modulation row (M = N,
per-token modulation) dscale and dshift are written in their dtype directly.
dx always gets its own buffer, whatever ``in_place`` says.
"""

from __future__ import annotations

import math
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
from liger_kernel.triton.rms_norm import CASTING_MODES, _normalize, _row_grads


@triton.jit
def _modulated_rms_norm_forward_kernel(
    X,
    x_row_stride,
    Y,
    W,
    SCALE,
    SHIFT,
    RSTD,
    n_rows,
    n_cols,
    rows_per_modulation,
    eps,
    offset,
    MODE: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    HAS_SHIFT: tl.constexpr,
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
            m = row // rows_per_modulation
            x = tl.load(X + row * x_row_stride + cols, mask=mask, other=0.0)
            xa = x.to(ACC)
            rstd = 1.0 / tl.sqrt(tl.sum(xa * xa, axis=0) / n_cols + eps)
            tl.store(RSTD + row, rstd)
            r = _normalize(x, rstd, w, offset, MODE, HAS_WEIGHT, ACC)
            y = r * (1.0 + tl.load(SCALE + m * n_cols + cols, mask=mask, other=0.0).to(ACC))
            if HAS_SHIFT:
                y += tl.load(SHIFT + m * n_cols + cols, mask=mask, other=0.0).to(ACC)
            tl.store(Y + row * n_cols + cols, y.to(Y.dtype.element_ty), mask=mask)
    else:
        for row in tl.range(pid, n_rows, tl.num_programs(0)):
            m = row // rows_per_modulation
            sum_sq = tl.zeros([BLOCK], dtype=ACC)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                xa = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                sum_sq += xa * xa
            rstd = 1.0 / tl.sqrt(tl.sum(sum_sq, axis=0) / n_cols + eps)
            tl.store(RSTD + row, rstd)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0)
                w = tl.load(W + start + cols, mask=mask, other=0.0) if HAS_WEIGHT else 0.0
                r = _normalize(x, rstd, w, offset, MODE, HAS_WEIGHT, ACC)
                s = tl.load(SCALE + m * n_cols + start + cols, mask=mask, other=0.0).to(ACC)
                y = r * (1.0 + s)
                if HAS_SHIFT:
                    y += tl.load(SHIFT + m * n_cols + start + cols, mask=mask, other=0.0).to(ACC)
                tl.store(Y + row * n_cols + start + cols, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _modulated_rms_norm_backward_kernel(
    DY,
    dy_row_stride,
    DX,
    X,
    x_row_stride,
    W,
    SCALE,
    RSTD,
    DW_PARTIAL,
    DSCALE_PARTIAL,
    DSHIFT_PARTIAL,
    n_cols,
    dw_pitch,
    modulation_pitch,
    n_items,
    rows_per_modulation,
    chunks,
    chunk_rows,
    offset,
    MODE: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
    HAS_SHIFT: tl.constexpr,
    COMPUTE_DX: tl.constexpr,
    COMPUTE_DW: tl.constexpr,
    COMPUTE_DSCALE: tl.constexpr,
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
        for item in tl.range(pid, n_items, tl.num_programs(0)):
            m = item // chunks
            first = m * rows_per_modulation + (item % chunks) * chunk_rows
            last = tl.minimum(first + chunk_rows, (m + 1) * rows_per_modulation)
            modulation = 1.0 + tl.load(SCALE + m * n_cols + cols, mask=mask, other=0.0).to(ACC)
            dscale_sum = tl.zeros([BLOCK], dtype=ACC)
            dshift_sum = tl.zeros([BLOCK], dtype=ACC)
            for row in tl.range(first, last, num_stages=STAGES):
                x = tl.load(X + row * x_row_stride + cols, mask=mask, other=0.0)
                dy = tl.load(DY + row * dy_row_stride + cols, mask=mask, other=0.0).to(ACC)
                rstd = tl.load(RSTD + row)
                n, g = _row_grads(x, dy * modulation, w, rstd, offset, MODE, HAS_WEIGHT, ACC)
                if COMPUTE_DX:
                    dx = rstd * (g - n * (tl.sum(g * n, axis=0) / n_cols))
                    tl.store(DX + row * n_cols + cols, dx.to(DX.dtype.element_ty), mask=mask)
                if COMPUTE_DW:
                    dw_sum += dy * modulation * n
                if COMPUTE_DSCALE:
                    r = n * (offset + w.to(ACC)) if HAS_WEIGHT else n
                    dscale_sum += dy * r
                if HAS_SHIFT:
                    dshift_sum += dy
            if COMPUTE_DSCALE:
                tl.store(
                    DSCALE_PARTIAL + item * modulation_pitch + cols,
                    dscale_sum.to(DSCALE_PARTIAL.dtype.element_ty),
                    mask=mask,
                )
            if HAS_SHIFT:
                tl.store(
                    DSHIFT_PARTIAL + item * modulation_pitch + cols,
                    dshift_sum.to(DSHIFT_PARTIAL.dtype.element_ty),
                    mask=mask,
                )
        if COMPUTE_DW:
            tl.store(DW_PARTIAL + pid * dw_pitch + cols, dw_sum, mask=mask)
    else:
        # a row walked in blocks: every partial row is zeroed and owned by one
        # program, which adds into it (a read-modify-write that races with nobody)
        for item in tl.range(pid, n_items, tl.num_programs(0)):
            m = item // chunks
            first = m * rows_per_modulation + (item % chunks) * chunk_rows
            last = tl.minimum(first + chunk_rows, (m + 1) * rows_per_modulation)
            for row in tl.range(first, last):
                rstd = tl.load(RSTD + row)
                mean_gn = 0.0
                if COMPUTE_DX:
                    gn_sum = tl.zeros([BLOCK], dtype=ACC)
                    for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                        mask = start + cols < n_cols
                        x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0)
                        dy = tl.load(DY + row * dy_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                        s = tl.load(SCALE + m * n_cols + start + cols, mask=mask, other=0.0).to(ACC)
                        w = tl.load(W + start + cols, mask=mask, other=0.0) if HAS_WEIGHT else 0.0
                        n, g = _row_grads(x, dy * (1.0 + s), w, rstd, offset, MODE, HAS_WEIGHT, ACC)
                        gn_sum += g * n
                    mean_gn = tl.sum(gn_sum, axis=0) / n_cols
                for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                    mask = start + cols < n_cols
                    x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=0.0)
                    dy = tl.load(DY + row * dy_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                    s = tl.load(SCALE + m * n_cols + start + cols, mask=mask, other=0.0).to(ACC)
                    w = tl.load(W + start + cols, mask=mask, other=0.0) if HAS_WEIGHT else 0.0
                    n, g = _row_grads(x, dy * (1.0 + s), w, rstd, offset, MODE, HAS_WEIGHT, ACC)
                    if COMPUTE_DX:
                        dx = rstd * (g - n * mean_gn)
                        tl.store(DX + row * n_cols + start + cols, dx.to(DX.dtype.element_ty), mask=mask)
                    if COMPUTE_DW:
                        partial = DW_PARTIAL + pid * dw_pitch + start + cols
                        tl.store(partial, tl.load(partial, mask=mask, other=0.0) + dy * (1.0 + s) * n, mask=mask)
                    if COMPUTE_DSCALE:
                        r = n * (offset + w.to(ACC)) if HAS_WEIGHT else n
                        partial = DSCALE_PARTIAL + item * modulation_pitch + start + cols
                        tl.store(partial, tl.load(partial, mask=mask, other=0.0) + dy * r, mask=mask)
                    if HAS_SHIFT:
                        partial = DSHIFT_PARTIAL + item * modulation_pitch + start + cols
                        tl.store(partial, tl.load(partial, mask=mask, other=0.0) + dy, mask=mask)


def _modulation_rows(t: torch.Tensor, groups: int, n_cols: int) -> torch.Tensor:
    return t.reshape(groups, n_cols).contiguous()


def modulated_rms_norm_forward(
    x_rows: torch.Tensor,
    W: torch.Tensor | None,
    scale_rows: torch.Tensor,
    shift_rows: torch.Tensor | None,
    eps: float,
    offset: float,
    mode: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Y, RSTD) for 2-D rows and (M, H) contiguous modulation rows."""
    n_rows, n_cols = x_rows.shape
    profile = device_profile(x_rows.device)
    plan = row_launch(profile, n_rows, n_cols)
    single_block = plan.block >= n_cols
    y = torch.empty((n_rows, n_cols), dtype=x_rows.dtype, device=x_rows.device)
    rstd = torch.empty(n_rows, dtype=statistics_dtype(x_rows.dtype), device=x_rows.device)
    if n_rows == 0:
        return y, rstd
    step_bytes = (1 if single_block else 2) * plan.block * x_rows.element_size()
    launch(
        profile,
        _modulated_rms_norm_forward_kernel,
        plan.grid,
        x_rows,
        x_rows.stride(0),
        y,
        W if W is not None else x_rows,
        scale_rows,
        shift_rows if shift_rows is not None else scale_rows,
        rstd,
        n_rows,
        n_cols,
        n_rows // scale_rows.shape[0],
        eps,
        offset,
        MODE=mode,
        HAS_WEIGHT=W is not None,
        HAS_SHIFT=shift_rows is not None,
        ACC=accumulator_dtype(x_rows.dtype),
        BLOCK=plan.block,
        SINGLE_BLOCK=single_block,
        STAGES=pipeline_stages(profile, step_bytes),
        num_warps=plan.num_warps,
    )
    return y, rstd


def modulated_rms_norm_backward(
    dy: torch.Tensor,
    x_rows: torch.Tensor,
    W: torch.Tensor | None,
    scale_rows: torch.Tensor,
    shift_dtype: torch.dtype | None,
    rstd: torch.Tensor,
    offset: float,
    mode: int,
    needs: tuple[bool, bool, bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(dX rows, dW, dscale rows, dshift rows) for 2-D rows; ``needs`` says
    which of them autograd wants (dshift also needs a shift: ``shift_dtype``)."""
    n_rows, n_cols = x_rows.shape
    groups = scale_rows.shape[0]
    per_group = n_rows // groups if groups else 0
    needs_dx, needs_dw, needs_dscale, needs_dshift = needs
    needs_dw = needs_dw and W is not None
    needs_dshift = needs_dshift and shift_dtype is not None
    device = x_rows.device
    dx = torch.empty((n_rows, n_cols), dtype=x_rows.dtype, device=device) if needs_dx else None
    if n_rows == 0:
        # no rows: nothing reaches W or the modulation rows
        zeros = torch.zeros
        dw = zeros(n_cols, dtype=W.dtype, device=device) if needs_dw else None
        dscale = zeros((groups, n_cols), dtype=scale_rows.dtype, device=device) if needs_dscale else None
        dshift = zeros((groups, n_cols), dtype=shift_dtype, device=device) if needs_dshift else None
        return dx, dw, dscale, dshift
    profile = device_profile(device)
    block = row_block(n_cols, profile)
    single_block = block >= n_cols
    programs = reduction_grid(profile, n_rows)
    chunk_rows = math.ceil(per_group / max(1, min(per_group, math.ceil(programs / groups))))
    chunks = math.ceil(per_group / chunk_rows)
    n_items = groups * chunks
    grid = min(programs, n_items)
    acc = statistics_dtype(x_rows.dtype)
    new = torch.empty if single_block else torch.zeros
    # partial rows summed by 2-D tiles get a 32-byte multiple of a pitch (the
    # Ascend vector cores fault on 2-D loads of another pitch); their padding
    # columns are never written and their sums are cut off
    padded = -(-n_cols // 8) * 8
    direct = chunks == 1 and single_block

    def modulation_partial(dtype: torch.dtype) -> torch.Tensor:
        # one chunk per modulation row and rows in registers: stored once, in the input's dtype
        if direct:
            return torch.empty((n_items, n_cols), dtype=dtype, device=device)
        return new((n_items, padded), dtype=acc, device=device)

    dw_partial = new((1, grid, padded), dtype=acc, device=device) if needs_dw else None
    dscale_partial = modulation_partial(scale_rows.dtype) if needs_dscale else None
    dshift_partial = modulation_partial(shift_dtype) if needs_dshift else None
    dy_rows = as_rows(dy)
    step_bytes = (1 if single_block else 2) * block * (x_rows.element_size() + dy_rows.element_size())
    launch(
        profile,
        _modulated_rms_norm_backward_kernel,
        grid,
        dy_rows,
        dy_rows.stride(0),
        dx if dx is not None else dy_rows,
        x_rows,
        x_rows.stride(0),
        W if W is not None else x_rows,
        scale_rows,
        rstd,
        dw_partial if dw_partial is not None else rstd,
        dscale_partial if dscale_partial is not None else rstd,
        dshift_partial if dshift_partial is not None else rstd,
        n_cols,
        padded,
        n_cols if direct else padded,
        n_items,
        per_group,
        chunks,
        chunk_rows,
        offset,
        MODE=mode,
        HAS_WEIGHT=W is not None,
        HAS_SHIFT=needs_dshift,
        COMPUTE_DX=needs_dx,
        COMPUTE_DW=needs_dw,
        COMPUTE_DSCALE=needs_dscale,
        ACC=accumulator_dtype(x_rows.dtype),
        BLOCK=block,
        SINGLE_BLOCK=single_block,
        STAGES=pipeline_stages(profile, step_bytes),
        num_warps=profile.num_warps(block),
    )
    dw = sum_partials(dw_partial, (W.dtype,))[0][:n_cols] if dw_partial is not None else None
    dscale = _reduce_chunks(dscale_partial, groups, chunks, n_cols, scale_rows.dtype)
    dshift = _reduce_chunks(dshift_partial, groups, chunks, n_cols, shift_dtype)
    return dx, dw, dscale, dshift


def _reduce_chunks(
    partial: torch.Tensor | None, groups: int, chunks: int, n_cols: int, dtype: torch.dtype | None
) -> torch.Tensor | None:
    """(M, H) totals of per-chunk partial rows (M * chunks, pitch >= H), in ``dtype``."""
    if partial is None:
        return None
    if chunks == 1:
        return partial[:, :n_cols].to(dtype)
    if groups == 1:
        return sum_partials(partial.unsqueeze(0), (dtype,))[0][:n_cols].unsqueeze(0)
    return partial.view(groups, chunks, -1)[:, :, :n_cols].sum(dim=1).to(dtype)


class ModulatedRMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        X: torch.Tensor,
        W: torch.Tensor | None,
        scale: torch.Tensor,
        shift: torch.Tensor | None,
        eps: float,
        offset: float = 0.0,
        casting_mode: str = "llama",
        in_place: bool = True,
    ) -> torch.Tensor:
        mode = CASTING_MODES[casting_mode]
        x_rows = as_rows(X)
        n_cols = x_rows.shape[1]
        groups = scale.numel() // n_cols
        scale_rows = _modulation_rows(scale, groups, n_cols)
        shift_rows = _modulation_rows(shift, groups, n_cols) if shift is not None else None
        y, rstd = modulated_rms_norm_forward(x_rows, W, scale_rows, shift_rows, eps, offset, mode)
        ctx.save_for_backward(x_rows, W, scale_rows, rstd)
        ctx.offset, ctx.mode, ctx.x_shape, ctx.scale_shape = offset, mode, X.shape, scale.shape
        ctx.shift = (shift.shape, shift.dtype) if shift is not None else None
        return shaped(y, X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> tuple[Any, ...]:
        x_rows, W, scale_rows, rstd = ctx.saved_tensors
        shift_shape, shift_dtype = ctx.shift if ctx.shift is not None else (None, None)
        dx, dw, dscale, dshift = modulated_rms_norm_backward(
            dY,
            x_rows,
            W,
            scale_rows,
            shift_dtype,
            rstd,
            ctx.offset,
            ctx.mode,
            tuple(ctx.needs_input_grad[:4]),
        )
        if dx is not None:
            dx = shaped(dx, ctx.x_shape)
        if dscale is not None:
            dscale = dscale.view(ctx.scale_shape)
        if dshift is not None:
            dshift = dshift.view(shift_shape)
        return dx, dw, dscale, dshift, None, None, None, None
