"""GroupNorm, portable Triton kernels (math: :mod:`liger_kernel.ops.group_norm`).

X (N, C, *spatial) is seen as N * G rows, one per (sample, group), each a
(C / G, S) matrix of the group's channels by the S flattened spatial positions.
mean and rstd are kept per row for the backward.

Layout: a persistent grid walks the rows. A row is processed in tiles of
(BLOCK_C channels) x (BLOCK_S positions), BLOCK_C * BLOCK_S <= profile.max_block,
so that a wide spatial extent and a group of many 1-position channels both make
full tiles. A row that fits one tile is loaded once and kept in registers; a
wider one is walked in tiles of half that size (mean, then the variance about
it, then y: the two-pass variance avoids the cancellation of E[x^2] - mean^2;
the walk keeps tile-shaped running sums, which half-size tiles keep within the
on-chip memory the profile sized max_block for, the NPU's UB included). Rows
are the unit of parallelism, so fewer rows (N * G) than programs leave compute
units idle. The backward
writes, per row, the sums over its positions of dy * n and dy for each of its
channels into an (N, C) buffer (each row owns its part: no atomics, so the
result is deterministic); dweight and dbias are that buffer summed over N.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.triton.launch import accumulator_dtype, launch, pipeline_stages, statistics_dtype


@triton.jit
def _tile(c_start, s_start, channels_per_group, n_positions, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    """(channel indices in the group, element offsets in the row, mask) of one tile."""
    channels = c_start + tl.arange(0, BLOCK_C)
    positions = s_start + tl.arange(0, BLOCK_S)
    offsets = channels[:, None] * n_positions + positions[None, :]
    mask = (channels < channels_per_group)[:, None] & (positions < n_positions)[None, :]
    return channels, offsets, mask


@triton.jit
def _group_norm_forward_kernel(
    X,
    x_row_stride,
    Y,
    W,
    B,
    MEAN,
    RSTD,
    n_rows,
    n_groups,
    channels_per_group,
    n_positions,
    eps,
    HAS_BIAS: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
    SINGLE_TILE: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    row_width = channels_per_group * n_positions
    if SINGLE_TILE:
        channels, offsets, mask = _tile(0, 0, channels_per_group, n_positions, BLOCK_C, BLOCK_S)
        for row in tl.range(pid, n_rows, tl.num_programs(0), num_stages=STAGES):
            first_channel = (row % n_groups) * channels_per_group
            channel_mask = channels < channels_per_group
            w = tl.load(W + first_channel + channels, mask=channel_mask, other=0.0).to(ACC)
            x = tl.load(X + row * x_row_stride + offsets, mask=mask, other=0.0).to(ACC)
            mean = tl.sum(tl.sum(x, axis=1), axis=0) / row_width
            centered = tl.where(mask, x - mean, 0.0)
            rstd = 1.0 / tl.sqrt(tl.sum(tl.sum(centered * centered, axis=1), axis=0) / row_width + eps)
            tl.store(MEAN + row, mean)
            tl.store(RSTD + row, rstd)
            y = centered * rstd * w[:, None]
            if HAS_BIAS:
                y += tl.load(B + first_channel + channels, mask=channel_mask, other=0.0).to(ACC)[:, None]
            tl.store(Y + row * row_width + offsets, y.to(Y.dtype.element_ty), mask=mask)
    else:
        for row in tl.range(pid, n_rows, tl.num_programs(0)):
            first_channel = (row % n_groups) * channels_per_group
            x_row = X + row * x_row_stride
            total = tl.zeros([BLOCK_C, BLOCK_S], dtype=ACC)
            for c_start in tl.range(0, channels_per_group, BLOCK_C):
                for s_start in tl.range(0, n_positions, BLOCK_S, num_stages=STAGES):
                    _, offsets, mask = _tile(c_start, s_start, channels_per_group, n_positions, BLOCK_C, BLOCK_S)
                    total += tl.load(x_row + offsets, mask=mask, other=0.0).to(ACC)
            mean = tl.sum(tl.sum(total, axis=1), axis=0) / row_width
            square_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=ACC)
            for c_start in tl.range(0, channels_per_group, BLOCK_C):
                for s_start in tl.range(0, n_positions, BLOCK_S, num_stages=STAGES):
                    _, offsets, mask = _tile(c_start, s_start, channels_per_group, n_positions, BLOCK_C, BLOCK_S)
                    x = tl.load(x_row + offsets, mask=mask, other=0.0).to(ACC)
                    centered = tl.where(mask, x - mean, 0.0)
                    square_sum += centered * centered
            rstd = 1.0 / tl.sqrt(tl.sum(tl.sum(square_sum, axis=1), axis=0) / row_width + eps)
            tl.store(MEAN + row, mean)
            tl.store(RSTD + row, rstd)
            for c_start in tl.range(0, channels_per_group, BLOCK_C):
                channels = c_start + tl.arange(0, BLOCK_C)
                channel_mask = channels < channels_per_group
                w = tl.load(W + first_channel + channels, mask=channel_mask, other=0.0).to(ACC)
                if HAS_BIAS:
                    b = tl.load(B + first_channel + channels, mask=channel_mask, other=0.0).to(ACC)
                for s_start in tl.range(0, n_positions, BLOCK_S, num_stages=STAGES):
                    _, offsets, mask = _tile(c_start, s_start, channels_per_group, n_positions, BLOCK_C, BLOCK_S)
                    x = tl.load(x_row + offsets, mask=mask, other=0.0).to(ACC)
                    y = (x - mean) * rstd * w[:, None]
                    if HAS_BIAS:
                        y += b[:, None]
                    tl.store(Y + row * row_width + offsets, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _group_norm_backward_kernel(
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
    n_rows,
    n_groups,
    channels_per_group,
    n_positions,
    COMPUTE_DX: tl.constexpr,
    COMPUTE_DW: tl.constexpr,
    COMPUTE_DB: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
    SINGLE_TILE: tl.constexpr,
    STAGES: tl.constexpr,
):
    # DW_PARTIAL and DB_PARTIAL are (N, C): row (n, g) owns entries n * C + g * (C / G) + [0, C / G)
    pid = tl.program_id(0).to(tl.int64)
    row_width = channels_per_group * n_positions
    if SINGLE_TILE:
        channels, offsets, mask = _tile(0, 0, channels_per_group, n_positions, BLOCK_C, BLOCK_S)
        channel_mask = channels < channels_per_group
        for row in tl.range(pid, n_rows, tl.num_programs(0), num_stages=STAGES):
            first_channel = (row % n_groups) * channels_per_group
            x = tl.load(X + row * x_row_stride + offsets, mask=mask, other=0.0).to(ACC)
            dy = tl.load(DY + row * dy_row_stride + offsets, mask=mask, other=0.0).to(ACC)
            rstd = tl.load(RSTD + row)
            n = tl.where(mask, (x - tl.load(MEAN + row)) * rstd, 0.0)
            if COMPUTE_DX:
                w = tl.load(W + first_channel + channels, mask=channel_mask, other=0.0).to(ACC)
                g = dy * w[:, None]
                mean_g = tl.sum(tl.sum(g, axis=1), axis=0) / row_width
                mean_gn = tl.sum(tl.sum(g * n, axis=1), axis=0) / row_width
                dx = rstd * (g - mean_g - n * mean_gn)
                tl.store(DX + row * row_width + offsets, dx.to(DX.dtype.element_ty), mask=mask)
            if COMPUTE_DW:
                tl.store(DW_PARTIAL + row * channels_per_group + channels, tl.sum(dy * n, axis=1), mask=channel_mask)
            if COMPUTE_DB:
                tl.store(DB_PARTIAL + row * channels_per_group + channels, tl.sum(dy, axis=1), mask=channel_mask)
    else:
        for row in tl.range(pid, n_rows, tl.num_programs(0)):
            first_channel = (row % n_groups) * channels_per_group
            x_row = X + row * x_row_stride
            dy_row = DY + row * dy_row_stride
            mean = tl.load(MEAN + row)
            rstd = tl.load(RSTD + row)
            g_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=ACC)
            gn_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=ACC)
            # first pass: the row's sums for dx, and each channel's dweight and dbias terms
            for c_start in tl.range(0, channels_per_group, BLOCK_C):
                channels = c_start + tl.arange(0, BLOCK_C)
                channel_mask = channels < channels_per_group
                w = tl.load(W + first_channel + channels, mask=channel_mask, other=0.0).to(ACC)
                dw_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=ACC)
                db_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=ACC)
                for s_start in tl.range(0, n_positions, BLOCK_S, num_stages=STAGES):
                    _, offsets, mask = _tile(c_start, s_start, channels_per_group, n_positions, BLOCK_C, BLOCK_S)
                    x = tl.load(x_row + offsets, mask=mask, other=0.0).to(ACC)
                    dy = tl.load(dy_row + offsets, mask=mask, other=0.0).to(ACC)
                    n = tl.where(mask, (x - mean) * rstd, 0.0)
                    g = dy * w[:, None]
                    g_sum += g
                    gn_sum += g * n
                    dw_sum += dy * n
                    db_sum += dy
                if COMPUTE_DW:
                    tl.store(
                        DW_PARTIAL + row * channels_per_group + channels, tl.sum(dw_sum, axis=1), mask=channel_mask
                    )
                if COMPUTE_DB:
                    tl.store(
                        DB_PARTIAL + row * channels_per_group + channels, tl.sum(db_sum, axis=1), mask=channel_mask
                    )
            if COMPUTE_DX:
                mean_g = tl.sum(tl.sum(g_sum, axis=1), axis=0) / row_width
                mean_gn = tl.sum(tl.sum(gn_sum, axis=1), axis=0) / row_width
                for c_start in tl.range(0, channels_per_group, BLOCK_C):
                    channels = c_start + tl.arange(0, BLOCK_C)
                    w = tl.load(W + first_channel + channels, mask=channels < channels_per_group, other=0.0).to(ACC)
                    for s_start in tl.range(0, n_positions, BLOCK_S, num_stages=STAGES):
                        _, offsets, mask = _tile(c_start, s_start, channels_per_group, n_positions, BLOCK_C, BLOCK_S)
                        x = tl.load(x_row + offsets, mask=mask, other=0.0).to(ACC)
                        dy = tl.load(dy_row + offsets, mask=mask, other=0.0).to(ACC)
                        dx = rstd * (dy * w[:, None] - mean_g - (x - mean) * rstd * mean_gn)
                        tl.store(DX + row * row_width + offsets, dx.to(DX.dtype.element_ty), mask=mask)


def _power_of_2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def tile_shape(profile: Any, channels_per_group: int, n_positions: int) -> tuple[int, int]:
    """(BLOCK_C, BLOCK_S): positions first (contiguous in memory), then as many
    channels as keep the tile within ``profile.max_block`` elements. A row that
    does not fit one tile is walked in tiles of half that: the walk keeps more
    tiles alive at once (the loaded ones and the running sums), and half-size
    tiles keep them within the on-chip memory the profile sized max_block for."""

    def fit(limit: int) -> tuple[int, int]:
        block_s = min(_power_of_2_at_least(n_positions), limit)
        return min(_power_of_2_at_least(channels_per_group), max(1, limit // block_s)), block_s

    block_c, block_s = fit(profile.max_block)
    if block_c < channels_per_group or block_s < n_positions:
        block_c, block_s = fit(max(1, profile.max_block // 2))
    return block_c, block_s


def group_rows(t: torch.Tensor, n_rows: int, row_width: int) -> torch.Tensor:
    """``t`` as (N * G, K) rows with unit stride inside a row (a view where one exists)."""
    rows = t.reshape(n_rows, row_width)
    if rows.stride(-1) != 1 and row_width > 1:
        rows = rows.contiguous()
    return rows


class GroupNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        X: torch.Tensor,
        affine_scaling_weight: torch.Tensor,
        affine_shifting_bias: torch.Tensor | None,
        num_channels: int,
        num_groups: int,
        eps: float,
    ) -> torch.Tensor:
        weight, bias = affine_scaling_weight, affine_shifting_bias  # 0.8.5's names in the signature
        channels_per_group = num_channels // num_groups
        n_positions = math.prod(X.shape[2:])
        n_rows, row_width = X.shape[0] * num_groups, channels_per_group * n_positions
        x_rows = group_rows(X, n_rows, row_width)
        profile = device_profile(X.device)
        block_c, block_s = tile_shape(profile, channels_per_group, n_positions)
        single_tile = block_c >= channels_per_group and block_s >= n_positions
        stats_dtype = statistics_dtype(X.dtype)
        y = torch.empty((n_rows, row_width), dtype=X.dtype, device=X.device)
        mean = torch.empty(n_rows, dtype=stats_dtype, device=X.device)
        rstd = torch.empty(n_rows, dtype=stats_dtype, device=X.device)
        if x_rows.numel():
            launch(
                profile,
                _group_norm_forward_kernel,
                profile.grid(n_rows),
                x_rows,
                x_rows.stride(0),
                y,
                weight,
                bias if bias is not None else weight,
                mean,
                rstd,
                n_rows,
                num_groups,
                channels_per_group,
                n_positions,
                eps,
                HAS_BIAS=bias is not None,
                ACC=accumulator_dtype(X.dtype),
                BLOCK_C=block_c,
                BLOCK_S=block_s,
                SINGLE_TILE=single_tile,
                # Measured on an H200 (bf16, 8-16 x 512 x 32-64 x 64, 32 groups, and
                # 4 x 2048 x 8 x 8, one group): the forward is faster unpipelined
                STAGES=1,
                num_warps=profile.num_warps(block_c * block_s),
            )
        ctx.save_for_backward(x_rows, weight, mean, rstd)
        ctx.has_bias = bias is not None
        ctx.bias_dtype = bias.dtype if bias is not None else None
        ctx.x_shape, ctx.num_channels, ctx.num_groups, ctx.n_positions = X.shape, num_channels, num_groups, n_positions
        return y.view(X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> tuple[Any, ...]:
        x_rows, weight, mean, rstd = ctx.saved_tensors
        n_rows, row_width = x_rows.shape
        channels, groups, n_positions = ctx.num_channels, ctx.num_groups, ctx.n_positions
        channels_per_group = channels // groups
        batch = ctx.x_shape[0]
        needs_dx, needs_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        needs_db = ctx.has_bias and ctx.needs_input_grad[2]
        profile = device_profile(x_rows.device)
        block_c, block_s = tile_shape(profile, channels_per_group, n_positions)
        single_tile = block_c >= channels_per_group and block_s >= n_positions
        dy_rows = group_rows(dY, n_rows, row_width)
        dx = torch.empty((n_rows, row_width), dtype=x_rows.dtype, device=x_rows.device) if needs_dx else None
        # every entry is written by the row that owns it, so no zero fill is needed
        # (except with no values at all, where no row writes and the sums are zero)
        partials = None
        if needs_dw or needs_db:
            allocate = torch.empty if x_rows.numel() else torch.zeros
            partials = allocate((2, batch, channels), dtype=rstd.dtype, device=x_rows.device)
        if x_rows.numel() and (needs_dx or partials is not None):
            launch(
                profile,
                _group_norm_backward_kernel,
                profile.grid(n_rows),
                dy_rows,
                dy_rows.stride(0),
                dx if dx is not None else dy_rows,
                x_rows,
                x_rows.stride(0),
                weight,
                mean,
                rstd,
                partials[0] if partials is not None else rstd,
                partials[1] if partials is not None else rstd,
                n_rows,
                groups,
                channels_per_group,
                n_positions,
                COMPUTE_DX=needs_dx,
                COMPUTE_DW=needs_dw,
                COMPUTE_DB=needs_db,
                ACC=accumulator_dtype(x_rows.dtype),
                BLOCK_C=block_c,
                BLOCK_S=block_s,
                SINGLE_TILE=single_tile,
                STAGES=pipeline_stages(
                    profile,
                    (1 if single_tile else 2) * block_c * block_s * (x_rows.element_size() + dy_rows.element_size()),
                ),
                num_warps=profile.num_warps(block_c * block_s),
            )
        dw = db = None
        if partials is not None:
            totals = partials.sum(1)
            dw = totals[0].to(weight.dtype) if needs_dw else None
            # a copy: gradients returned together must not share storage (as operator outputs)
            db = totals[1].to(ctx.bias_dtype, copy=True) if needs_db else None
        dx = dx.view(ctx.x_shape) if dx is not None else None
        return dx, dw, db, None, None, None
