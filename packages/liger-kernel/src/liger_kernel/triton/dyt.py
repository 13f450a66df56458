"""Dynamic Tanh over the last dimension, portable Triton kernels
(math: :mod:`liger_kernel.ops.dyt`).

tanh and its slope come from ``tl.*`` math only (no libdevice, so the
interpreter and every vendor run them), through ``_small_sigmoid``. Only x is
saved; the backward recomputes tanh from it.

Layout: x is seen as (rows, H) and walked in tiles of ``BLOCK_ROWS`` rows by
``BLOCK_COLS`` columns. Each program takes one column block at a time (gamma
and beta are loaded once per block) and strides over the row tiles of a
persistent grid. In the backward the grid is one program per compute unit;
each program sums its rows' dgamma, dbeta and dalpha terms in fp32 registers
and stores them into its own row of a partial buffer (no atomics, no
contention), and the partial rows are summed afterwards: a fixed order, so
the result is deterministic.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import triton
import triton.language as tl

from liger_kernel.backend import DeviceProfile
from liger_kernel.dispatch import device_profile
from liger_kernel.triton.launch import (
    MIN_BLOCK,
    TILE,
    as_rows,
    launch,
    pipeline_stages,
    reduction_grid,
    shaped,
)


@triton.jit
def _small_sigmoid(u):
    # p = sigmoid(-2|u|) = (1 - |tanh(u)|) / 2 is the small side of the sigmoid,
    # computed without cancellation; tanh = sign(u) * (1 - 2p) and its slope
    # 1 - tanh**2 = 4p(1 - p) then keep their relative accuracy where |tanh|
    # nears 1 (2 * sigmoid(2u) - 1 would leave 1 - tanh**2 at rounding noise)
    return tl.sigmoid(-2.0 * tl.abs(u))


@triton.jit
def _signed(magnitude, u):
    return tl.where(u < 0, -magnitude, magnitude)


@triton.jit
def _dyt_forward_kernel(
    X,
    x_row_stride,
    ALPHA,
    GAMMA,
    BETA,
    Y,
    n_rows,
    n_cols,
    HAS_BETA: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_ROWS: tl.constexpr,
    BLOCK_COLS: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    tile_rows = tl.arange(0, BLOCK_ROWS).to(tl.int64)
    tile_cols = tl.arange(0, BLOCK_COLS)
    alpha = tl.load(ALPHA).to(ACC)
    for col_start in tl.range(0, n_cols, BLOCK_COLS):
        cols = col_start + tile_cols
        col_mask = cols < n_cols
        gamma = tl.load(GAMMA + cols, mask=col_mask, other=0.0).to(ACC)[None, :]
        if HAS_BETA:
            beta = tl.load(BETA + cols, mask=col_mask, other=0.0).to(ACC)[None, :]
        for tile in tl.range(pid, tl.cdiv(n_rows, BLOCK_ROWS), tl.num_programs(0), num_stages=STAGES):
            rows = tile * BLOCK_ROWS + tile_rows
            mask = (rows < n_rows)[:, None] & col_mask[None, :]
            x = tl.load(X + rows[:, None] * x_row_stride + cols[None, :], mask=mask, other=0.0).to(ACC)
            u = alpha * x
            y = gamma * _signed(1.0 - 2.0 * _small_sigmoid(u), u)
            if HAS_BETA:
                y += beta
            tl.store(Y + rows[:, None] * n_cols + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _dyt_backward_kernel(
    DY,
    dy_row_stride,
    X,
    x_row_stride,
    ALPHA,
    GAMMA,
    DX,
    DGAMMA_PARTIAL,
    DBETA_PARTIAL,
    DALPHA_PARTIAL,
    n_rows,
    n_cols,
    COMPUTE_DX: tl.constexpr,
    COMPUTE_DALPHA: tl.constexpr,
    COMPUTE_DGAMMA: tl.constexpr,
    COMPUTE_DBETA: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_ROWS: tl.constexpr,
    BLOCK_COLS: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    tile_rows = tl.arange(0, BLOCK_ROWS).to(tl.int64)
    tile_cols = tl.arange(0, BLOCK_COLS)
    alpha = tl.load(ALPHA).to(ACC)
    dalpha_sum = tl.zeros([BLOCK_COLS], dtype=ACC)
    for col_start in tl.range(0, n_cols, BLOCK_COLS):
        cols = col_start + tile_cols
        col_mask = cols < n_cols
        gamma = tl.load(GAMMA + cols, mask=col_mask, other=0.0).to(ACC)[None, :]
        dgamma_sum = tl.zeros([BLOCK_COLS], dtype=ACC)
        dbeta_sum = tl.zeros([BLOCK_COLS], dtype=ACC)
        for tile in tl.range(pid, tl.cdiv(n_rows, BLOCK_ROWS), tl.num_programs(0), num_stages=STAGES):
            rows = tile * BLOCK_ROWS + tile_rows
            mask = (rows < n_rows)[:, None] & col_mask[None, :]
            # masked lanes read dy = 0 and add nothing to the sums
            dy = tl.load(DY + rows[:, None] * dy_row_stride + cols[None, :], mask=mask, other=0.0).to(ACC)
            x = tl.load(X + rows[:, None] * x_row_stride + cols[None, :], mask=mask, other=0.0).to(ACC)
            u = alpha * x
            p = _small_sigmoid(u)
            if COMPUTE_DX or COMPUTE_DALPHA:
                g = dy * gamma * (4.0 * p * (1.0 - p))
                if COMPUTE_DX:
                    tl.store(
                        DX + rows[:, None] * n_cols + cols[None, :], (g * alpha).to(DX.dtype.element_ty), mask=mask
                    )
                if COMPUTE_DALPHA:
                    dalpha_sum += tl.sum(g * x, axis=0)
            if COMPUTE_DGAMMA:
                dgamma_sum += tl.sum(dy * _signed(1.0 - 2.0 * p, u), axis=0)
            if COMPUTE_DBETA:
                dbeta_sum += tl.sum(dy, axis=0)
        if COMPUTE_DGAMMA:
            tl.store(DGAMMA_PARTIAL + pid * n_cols + cols, dgamma_sum, mask=col_mask)
        if COMPUTE_DBETA:
            tl.store(DBETA_PARTIAL + pid * n_cols + cols, dbeta_sum, mask=col_mask)
    if COMPUTE_DALPHA:
        tl.store(DALPHA_PARTIAL + pid, tl.sum(dalpha_sum, axis=0))


class TilePlan(NamedTuple):
    block_rows: int
    block_cols: int
    row_tiles: int
    num_warps: int


def tile_plan(
    profile: DeviceProfile, n_rows: int, n_cols: int, elements: int, max_block_rows: int | None = None
) -> TilePlan:
    """Tiles of at most ``elements``: as wide as the row needs, then as many
    rows as still fit, but no more rows than there are (nor than ``max_block_rows``)."""
    block_cols = MIN_BLOCK
    while block_cols < n_cols and block_cols < elements:
        block_cols *= 2
    row_limit = n_rows if max_block_rows is None else min(n_rows, max_block_rows)
    block_rows = 1
    while block_rows * block_cols * 2 <= elements and block_rows < row_limit:
        block_rows *= 2
    row_tiles = max(1, -(-n_rows // block_rows))
    return TilePlan(block_rows, block_cols, row_tiles, profile.num_warps(block_rows * block_cols))


def forward_tile(profile: DeviceProfile) -> int:
    # The forward keeps about nine fp32 values per element live (144 KiB at a
    # 4096-element tile, measured by the strict NPU mock), more than the six a
    # ``profile.max_block`` is sized for, so its tiles are half of that.
    return max(MIN_BLOCK, min(TILE, profile.max_block // 2))


def backward_tile(profile: DeviceProfile) -> int:
    # The backward keeps about thirteen (dy, x, u, p, g and the summed
    # products; 104 KiB at 2048 elements on the mock): half the forward's tile.
    return max(MIN_BLOCK, forward_tile(profile) // 2)


def _math_dtype(*tensors: torch.Tensor | None) -> tl.dtype:
    return tl.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else tl.float32


def dyt_forward(
    ctx: Any,
    x: torch.Tensor,
    alpha: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor | None,
    max_block_rows: int | None = None,
) -> torch.Tensor:
    """The forward of :class:`DyTFunction`, its tiles at most ``max_block_rows`` rows tall."""
    x_rows = as_rows(x)
    n_rows, n_cols = x_rows.shape
    gamma_c = gamma.contiguous()
    beta_c = beta.contiguous() if beta is not None else None
    y = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    if n_rows:
        profile = device_profile(x.device)
        plan = tile_plan(profile, n_rows, n_cols, forward_tile(profile), max_block_rows)
        launch(
            profile,
            _dyt_forward_kernel,
            profile.grid(plan.row_tiles),
            x_rows,
            x_rows.stride(0),
            alpha,
            gamma_c,
            beta_c if beta_c is not None else gamma_c,
            y,
            n_rows,
            n_cols,
            HAS_BETA=beta is not None,
            ACC=_math_dtype(x, alpha, gamma, beta),
            BLOCK_ROWS=plan.block_rows,
            BLOCK_COLS=plan.block_cols,
            STAGES=pipeline_stages(profile, plan.block_rows * plan.block_cols * x.element_size()),
            num_warps=plan.num_warps,
        )
    ctx.save_for_backward(x_rows, alpha, gamma_c)
    ctx.x_shape, ctx.beta_dtype = x.shape, beta.dtype if beta is not None else None
    ctx.acc = _math_dtype(x, alpha, gamma, beta)
    return shaped(y, x.shape)


def dyt_backward(ctx: Any, dy: torch.Tensor, max_block_rows: int | None = None) -> tuple[Any, ...]:
    """The backward of :class:`DyTFunction`, its tiles at most ``max_block_rows`` rows tall."""
    x_rows, alpha, gamma = ctx.saved_tensors
    n_rows, n_cols = x_rows.shape
    needs_dx, needs_dalpha, needs_dgamma, needs_dbeta = ctx.needs_input_grad[:4]
    needs_dbeta = needs_dbeta and ctx.beta_dtype is not None
    device = x_rows.device
    partial_dtype = torch.float64 if ctx.acc == tl.float64 else torch.float32
    dx = torch.empty((n_rows, n_cols), dtype=x_rows.dtype, device=device) if needs_dx else None
    profile = device_profile(device)
    plan = tile_plan(profile, n_rows, n_cols, backward_tile(profile), max_block_rows)
    grid = reduction_grid(profile, plan.row_tiles)
    # every program stores its whole row of each partial buffer, so none needs zeroing
    dgamma_partial = torch.empty((grid, n_cols), dtype=partial_dtype, device=device) if needs_dgamma else None
    dbeta_partial = torch.empty((grid, n_cols), dtype=partial_dtype, device=device) if needs_dbeta else None
    dalpha_partial = torch.empty(grid, dtype=partial_dtype, device=device) if needs_dalpha else None
    if n_rows and (needs_dx or needs_dalpha or needs_dgamma or needs_dbeta):
        dy_rows = as_rows(dy)
        placeholder = dgamma_partial if dgamma_partial is not None else x_rows
        launch(
            profile,
            _dyt_backward_kernel,
            grid,
            dy_rows,
            dy_rows.stride(0),
            x_rows,
            x_rows.stride(0),
            alpha,
            gamma,
            dx if dx is not None else dy_rows,
            placeholder,
            dbeta_partial if dbeta_partial is not None else placeholder,
            dalpha_partial if dalpha_partial is not None else placeholder,
            n_rows,
            n_cols,
            COMPUTE_DX=needs_dx,
            COMPUTE_DALPHA=needs_dalpha,
            COMPUTE_DGAMMA=needs_dgamma,
            COMPUTE_DBETA=needs_dbeta,
            ACC=ctx.acc,
            BLOCK_ROWS=plan.block_rows,
            BLOCK_COLS=plan.block_cols,
            STAGES=pipeline_stages(
                profile, plan.block_rows * plan.block_cols * (x_rows.element_size() + dy_rows.element_size())
            ),
            num_warps=plan.num_warps,
        )
    elif n_rows == 0:
        for partial in (dgamma_partial, dbeta_partial, dalpha_partial):
            if partial is not None:
                partial.zero_()
    dx = shaped(dx, ctx.x_shape) if dx is not None else None
    dalpha = dalpha_partial.sum().reshape(alpha.shape).to(alpha.dtype) if dalpha_partial is not None else None
    dgamma = dgamma_partial.sum(0).to(gamma.dtype) if dgamma_partial is not None else None
    dbeta = dbeta_partial.sum(0).to(ctx.beta_dtype) if dbeta_partial is not None else None
    return dx, dalpha, dgamma, dbeta


class DyTFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, alpha: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None
    ) -> torch.Tensor:
        return dyt_forward(ctx, x, alpha, gamma, beta)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[Any, ...]:
        return dyt_backward(ctx, dy)
