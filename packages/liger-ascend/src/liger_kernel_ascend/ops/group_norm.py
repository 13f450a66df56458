"""GroupNorm on the NPU (math: :mod:`liger_kernel.ops.group_norm`).

X (N, C, *spatial) is N * G rows, one per (sample, group), each its group's
C / G channels by S positions, contiguous. One program per vector core (the
grid never exceeds 65535) loops over the rows; a row is walked in
(``BLOCK_C`` channels x ``BLOCK_S`` positions) tiles of at most the profile's
``max_block`` elements, half that when the row takes several tiles (the walk
keeps tile-shaped running sums), as the portable kernel sizes them.

What the chip asks of the layout:

* no integer vector compare per tile (A2/A3 vector cores run each one scalar):
  ``BLOCK_C`` divides C / G, so channels never need a mask; positions are
  walked in whole ``BLOCK_S`` blocks, unmasked, and only the tail block is
  masked, with the one mask a program computes before its first row;
* a (channels x positions) tile has a row pitch of S positions: when that is
  not a multiple of 32 bytes (odd spatial sizes) the A3 vector cores fault on
  the 2-D DMA, so such a call takes one channel per tile (no pitch), checked
  again in backward for the gradient's dtype.

A row that fits one tile is loaded once; a wider one takes three forward
passes (mean, variance about it, output) and two backward (the row's sums and
each channel's dweight and dbias terms, then dx). The backward writes each
row's channel sums into an (N, C) buffer it owns (no atomics), summed over N
on the host. Statistics in fp32.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.triton.group_norm import group_rows
from liger_kernel_ascend.ops._common import PITCH_ALIGN_BYTES, check_npu_dtype
from liger_kernel_ascend.tiling import next_power_of_2


@triton.jit
def _load(P, mask, MASKED: tl.constexpr):
    if MASKED:
        return tl.load(P, mask=mask, other=0.0).to(tl.float32)
    else:
        return tl.load(P).to(tl.float32)


@triton.jit
def _store(P, value, mask, MASKED: tl.constexpr):
    if MASKED:
        tl.store(P, value, mask=mask)
    else:
        tl.store(P, value)


@triton.jit
def _terms(X_ROW, DY_ROW, offsets, mask, mean, rstd, w, MASKED: tl.constexpr):
    """A tile's backward terms: g = dy * w, g * n, dy * n and dy (n the normalised x)."""
    n = (_load(X_ROW + offsets, mask, MASKED) - mean) * rstd
    dy = _load(DY_ROW + offsets, mask, MASKED)
    g = dy * w
    return g, g * n, dy * n, dy


@triton.jit
def _dx(X_ROW, DY_ROW, offsets, mask, mean, rstd, w, mean_g, mean_gn, MASKED: tl.constexpr):
    n = (_load(X_ROW + offsets, mask, MASKED) - mean) * rstd
    return rstd * (_load(DY_ROW + offsets, mask, MASKED) * w - mean_g - n * mean_gn)


@triton.jit
def _group_norm_forward(
    X, x_row_stride, Y, W, B, MEAN, RSTD,
    n_rows, n_groups, channels_per_group, n_positions, whole_positions, eps,
    HAS_BIAS: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
    HAS_TAIL: tl.constexpr, SINGLE_TILE: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0).to(tl.int64)
    row_width = channels_per_group * n_positions
    tile_channels = tl.arange(0, BLOCK_C)
    positions = tl.arange(0, BLOCK_S)
    tile = tile_channels[:, None] * n_positions + positions[None, :]
    tail_mask = (whole_positions + positions < n_positions)[None, :]
    for row in tl.range(pid, n_rows, tl.num_programs(0)):
        x_row = X + row * x_row_stride
        y_row = Y + row * row_width
        first_channel = (row % n_groups) * channels_per_group
        if SINGLE_TILE:
            x = _load(x_row + tile, tail_mask, HAS_TAIL)
            mean = tl.sum(tl.sum(x, axis=1), axis=0) / row_width
            centred = x - mean
            if HAS_TAIL:
                centred = tl.where(tail_mask, centred, 0.0)
            rstd = 1.0 / tl.sqrt(tl.sum(tl.sum(centred * centred, axis=1), axis=0) / row_width + eps)
            y = centred * (rstd * tl.load(W + first_channel + tile_channels).to(tl.float32))[:, None]
            if HAS_BIAS:
                y += tl.load(B + first_channel + tile_channels).to(tl.float32)[:, None]
            _store(y_row + tile, y.to(Y.dtype.element_ty), tail_mask, HAS_TAIL)
        else:
            total = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
            for c_start in tl.range(0, channels_per_group, BLOCK_C):
                at = x_row + c_start * n_positions + tile
                for s_start in tl.range(0, whole_positions, BLOCK_S):
                    total += _load(at + s_start, tail_mask, False)
                if HAS_TAIL:
                    total += _load(at + whole_positions, tail_mask, True)
            mean = tl.sum(tl.sum(total, axis=1), axis=0) / row_width
            squares = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
            for c_start in tl.range(0, channels_per_group, BLOCK_C):
                at = x_row + c_start * n_positions + tile
                for s_start in tl.range(0, whole_positions, BLOCK_S):
                    centred = _load(at + s_start, tail_mask, False) - mean
                    squares += centred * centred
                if HAS_TAIL:
                    centred = tl.where(tail_mask, _load(at + whole_positions, tail_mask, True) - mean, 0.0)
                    squares += centred * centred
            rstd = 1.0 / tl.sqrt(tl.sum(tl.sum(squares, axis=1), axis=0) / row_width + eps)
            for c_start in tl.range(0, channels_per_group, BLOCK_C):
                channels = first_channel + c_start + tile_channels
                # y = x * scale + shift per channel
                scale = rstd * tl.load(W + channels).to(tl.float32)
                shift = -mean * scale
                if HAS_BIAS:
                    shift += tl.load(B + channels).to(tl.float32)
                offsets = c_start * n_positions + tile
                for s_start in tl.range(0, whole_positions, BLOCK_S):
                    y = _load(x_row + offsets + s_start, tail_mask, False) * scale[:, None] + shift[:, None]
                    tl.store(y_row + offsets + s_start, y.to(Y.dtype.element_ty))
                if HAS_TAIL:
                    y = _load(x_row + offsets + whole_positions, tail_mask, True) * scale[:, None] + shift[:, None]
                    tl.store(y_row + offsets + whole_positions, y.to(Y.dtype.element_ty), mask=tail_mask)
        tl.store(MEAN + row, mean)
        tl.store(RSTD + row, rstd)


@triton.jit
def _group_norm_backward(
    DY, dy_row_stride, DX, X, x_row_stride, W, MEAN, RSTD, DW_PARTIAL, DB_PARTIAL,
    n_rows, n_groups, channels_per_group, n_positions, whole_positions,
    COMPUTE_DX: tl.constexpr, COMPUTE_DW: tl.constexpr, COMPUTE_DB: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr, HAS_TAIL: tl.constexpr, SINGLE_TILE: tl.constexpr,
):  # fmt: skip
    # DW_PARTIAL and DB_PARTIAL are (N, C): row (n, g) owns entries row * (C / G) + [0, C / G).
    # Masked lanes load dy = 0, so every term below (dy, g = dy * w and their products) is 0 there.
    pid = tl.program_id(0).to(tl.int64)
    row_width = channels_per_group * n_positions
    tile_channels = tl.arange(0, BLOCK_C)
    positions = tl.arange(0, BLOCK_S)
    tile = tile_channels[:, None] * n_positions + positions[None, :]
    tail_mask = (whole_positions + positions < n_positions)[None, :]
    for row in tl.range(pid, n_rows, tl.num_programs(0)):
        x_row = X + row * x_row_stride
        dy_row = DY + row * dy_row_stride
        dx_row = DX + row * row_width
        first_channel = (row % n_groups) * channels_per_group
        mean = tl.load(MEAN + row)
        rstd = tl.load(RSTD + row)
        if SINGLE_TILE:
            n = (_load(x_row + tile, tail_mask, HAS_TAIL) - mean) * rstd
            dy = _load(dy_row + tile, tail_mask, HAS_TAIL)
            if COMPUTE_DX:
                g = dy * tl.load(W + first_channel + tile_channels).to(tl.float32)[:, None]
                mean_g = tl.sum(tl.sum(g, axis=1), axis=0) / row_width
                mean_gn = tl.sum(tl.sum(g * n, axis=1), axis=0) / row_width
                dx = rstd * (g - mean_g - n * mean_gn)
                _store(dx_row + tile, dx.to(DX.dtype.element_ty), tail_mask, HAS_TAIL)
            if COMPUTE_DW:
                tl.store(DW_PARTIAL + row * channels_per_group + tile_channels, tl.sum(dy * n, axis=1))
            if COMPUTE_DB:
                tl.store(DB_PARTIAL + row * channels_per_group + tile_channels, tl.sum(dy, axis=1))
        else:
            g_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
            gn_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
            for c_start in tl.range(0, channels_per_group, BLOCK_C):
                w = tl.load(W + first_channel + c_start + tile_channels).to(tl.float32)[:, None]
                dw_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
                db_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
                offsets = c_start * n_positions + tile
                for s_start in tl.range(0, whole_positions, BLOCK_S):
                    g, gn, dyn, dy = _terms(x_row, dy_row, offsets + s_start, tail_mask, mean, rstd, w, False)
                    g_sum, gn_sum, dw_sum, db_sum = g_sum + g, gn_sum + gn, dw_sum + dyn, db_sum + dy
                if HAS_TAIL:
                    g, gn, dyn, dy = _terms(x_row, dy_row, offsets + whole_positions, tail_mask, mean, rstd, w, True)
                    g_sum, gn_sum, dw_sum, db_sum = g_sum + g, gn_sum + gn, dw_sum + dyn, db_sum + dy
                if COMPUTE_DW:
                    tl.store(DW_PARTIAL + row * channels_per_group + c_start + tile_channels, tl.sum(dw_sum, axis=1))
                if COMPUTE_DB:
                    tl.store(DB_PARTIAL + row * channels_per_group + c_start + tile_channels, tl.sum(db_sum, axis=1))
            if COMPUTE_DX:
                mean_g = tl.sum(tl.sum(g_sum, axis=1), axis=0) / row_width
                mean_gn = tl.sum(tl.sum(gn_sum, axis=1), axis=0) / row_width
                for c_start in tl.range(0, channels_per_group, BLOCK_C):
                    w = tl.load(W + first_channel + c_start + tile_channels).to(tl.float32)[:, None]
                    offsets = c_start * n_positions + tile
                    for s_start in tl.range(0, whole_positions, BLOCK_S):
                        dx = _dx(x_row, dy_row, offsets + s_start, tail_mask, mean, rstd, w, mean_g, mean_gn, False)
                        tl.store(dx_row + offsets + s_start, dx.to(DX.dtype.element_ty))
                    if HAS_TAIL:
                        at = offsets + whole_positions
                        dx = _dx(x_row, dy_row, at, tail_mask, mean, rstd, w, mean_g, mean_gn, True)
                        tl.store(dx_row + at, dx.to(DX.dtype.element_ty), mask=tail_mask)


class Tiles(NamedTuple):
    block_c: int
    block_s: int
    single: bool

    def whole_positions(self, n_positions: int) -> int:
        """Positions walked in whole, unmasked blocks (a single tile is all tail)."""
        return 0 if self.single else n_positions - n_positions % self.block_s

    def constants(self, n_positions: int) -> dict[str, Any]:
        return {
            "BLOCK_C": self.block_c,
            "BLOCK_S": self.block_s,
            "HAS_TAIL": n_positions % self.block_s != 0,
            "SINGLE_TILE": self.single,
        }


def tiles(profile: Any, channels_per_group: int, n_positions: int, *itemsizes: int) -> Tiles:
    """Tiles for one group of ``channels_per_group`` x ``n_positions``, for
    tensors of ``itemsizes`` bytes per element: positions first (contiguous),
    then the most channels that divide the group and fit, one when a
    position row of one of the tensors is not 32-byte aligned (a group of
    odd C / G takes one channel per tile, and S = 1 a single position)."""
    # one position per channel: a tile of channels is a contiguous run, it has no pitch
    aligned = n_positions == 1 or all(n_positions * size % PITCH_ALIGN_BYTES == 0 for size in itemsizes)

    def fit(limit: int) -> tuple[int, int]:
        block_s = min(next_power_of_2(n_positions), limit)
        room = max(1, limit // block_s) if aligned else 1
        block_c = 1
        while block_c * 2 <= room and channels_per_group % (block_c * 2) == 0:
            block_c *= 2
        return block_c, block_s

    block_c, block_s = fit(profile.max_block)
    if block_c == channels_per_group and block_s >= n_positions:
        return Tiles(block_c, block_s, single=True)
    return Tiles(*fit(max(1, profile.max_block // 2)), single=False)


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
        check_npu_dtype("group_norm", X.dtype)
        channels_per_group = num_channels // num_groups
        n_positions = math.prod(X.shape[2:])
        n_rows, row_width = X.shape[0] * num_groups, channels_per_group * n_positions
        x_rows = group_rows(X, n_rows, row_width)
        profile = device_profile(X.device)
        y = torch.empty((n_rows, row_width), dtype=X.dtype, device=X.device)
        mean = torch.empty(n_rows, dtype=torch.float32, device=X.device)
        rstd = torch.empty(n_rows, dtype=torch.float32, device=X.device)
        if x_rows.numel():
            plan = tiles(profile, channels_per_group, n_positions, X.element_size())
            _group_norm_forward[(profile.grid(n_rows),)](
                x_rows, x_rows.stride(0), y, weight, bias if bias is not None else weight, mean, rstd,
                n_rows, num_groups, channels_per_group, n_positions, plan.whole_positions(n_positions), eps,
                HAS_BIAS=bias is not None, **plan.constants(n_positions),
            )  # fmt: skip
        ctx.save_for_backward(x_rows, weight, mean, rstd)
        ctx.bias_dtype = bias.dtype if bias is not None else None
        ctx.x_shape, ctx.num_groups, ctx.n_positions = X.shape, num_groups, n_positions
        return y.view(X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> tuple[Any, ...]:
        x_rows, weight, mean, rstd = ctx.saved_tensors
        n_rows, row_width = x_rows.shape
        batch, channels = ctx.x_shape[0], ctx.x_shape[1]
        channels_per_group, n_positions = channels // ctx.num_groups, ctx.n_positions
        needs_dx, needs_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        needs_db = ctx.bias_dtype is not None and ctx.needs_input_grad[2]
        check_npu_dtype("group_norm", dY.dtype)
        dy_rows = group_rows(dY, n_rows, row_width)
        device = x_rows.device
        dx = torch.empty((n_rows, row_width), dtype=x_rows.dtype, device=device) if needs_dx else None
        partials = None
        if needs_dw or needs_db:
            # each row writes its own entries; with no values at all nothing writes and the sums are 0
            allocate = torch.empty if x_rows.numel() else torch.zeros
            partials = allocate((2, batch, channels), dtype=torch.float32, device=device)
        if x_rows.numel() and (needs_dx or partials is not None):
            profile = device_profile(device)
            plan = tiles(profile, channels_per_group, n_positions, x_rows.element_size(), dy_rows.element_size())
            _group_norm_backward[(profile.grid(n_rows),)](
                dy_rows, dy_rows.stride(0), dx if dx is not None else dy_rows, x_rows, x_rows.stride(0), weight,
                mean, rstd, partials[0] if partials is not None else rstd, partials[1] if partials is not None else rstd,
                n_rows, ctx.num_groups, channels_per_group, n_positions, plan.whole_positions(n_positions),
                COMPUTE_DX=needs_dx, COMPUTE_DW=needs_dw, COMPUTE_DB=needs_db, **plan.constants(n_positions),
            )  # fmt: skip
        dw = db = None
        if partials is not None:
            totals = partials.sum(1)
            dw = totals[0].to(weight.dtype) if needs_dw else None
            # a copy: gradients returned together must not share storage
            db = totals[1].to(ctx.bias_dtype, copy=True) if needs_db else None
        return (dx.view(ctx.x_shape) if dx is not None else None), dw, db, None, None, None


__all__ = ["GroupNormFunction"]
