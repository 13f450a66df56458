"""GroupNorm on the NPU (math: :mod:`liger_kernel.ops.group_norm`).

X (N, C, *spatial) is N * G rows, one per (sample, group), each its group's
C / G channels by S positions, contiguous. One program per vector core (the
grid never exceeds 65535) loops over the rows; a row is walked in
(``BLOCK_C`` channels x ``BLOCK_S`` positions) tiles sized by the kernel's
calibrated UB cost (:func:`tiles`): the whole group in one tile when it fits,
else the widest run of positions, then as many channels as still fit.

What the chip asks of the layout:

* no integer vector compare per tile (A2/A3 vector cores run each one scalar):
  channels and positions are walked in whole ``BLOCK_C`` / ``BLOCK_S`` blocks,
  unmasked, and only the tail block of each (C / G or S not a multiple of the
  block) is masked, with the two masks a program computes before its first
  row (``_group_tiles``). The channel block is a power of two whatever C / G
  is (a group of 6 or 24 channels is not cut into blocks of 2 or 8 channels);
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
from liger_kernel_ascend import ub_calibration
from liger_kernel_ascend.ops._common import PITCH_ALIGN_BYTES, check_npu_dtype
from liger_kernel_ascend.tiling import next_power_of_2, prev_power_of_2
from liger_kernel_ascend.ub_calibration import kernel_name


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
def _group_tiles(channels_per_group, n_positions, whole_channels, whole_positions,
                 BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):  # fmt: skip
    """What both kernels set up before their first row: the tile's offsets in a
    row (channel-major, ``n_positions`` apart) and the masks of the tail channel
    block (1-D) and of the tail position block, the same for every row, so the
    vector compares run once per program, never per tile."""
    tile_channels = tl.arange(0, BLOCK_C)
    positions = tl.arange(0, BLOCK_S)
    tile = tile_channels[:, None] * n_positions + positions[None, :]
    channel_tail = whole_channels + tile_channels < channels_per_group
    position_tail = (whole_positions + positions < n_positions)[None, :]
    return tile_channels, tile, channel_tail, position_tail


@triton.jit
def _mask(channel_tail, position_tail, MASK_C: tl.constexpr, MASK_S: tl.constexpr):
    """The mask of a tile in the tail channel block (MASK_C) and/or the tail position block (MASK_S)."""
    if MASK_C and MASK_S:
        return channel_tail[:, None] & position_tail
    elif MASK_C:
        return channel_tail[:, None]
    else:
        return position_tail


@triton.jit
def _weights(P, channels, channel_tail, MASK_C: tl.constexpr):
    """One value per channel of the block, as a column (zero past the group)."""
    return _load(P + channels, channel_tail, MASK_C)[:, None]


@triton.jit
def _sum_block(at, whole_positions, channel_tail, position_tail, mean,
               BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr, HAS_TAIL: tl.constexpr,
               MASK_C: tl.constexpr, SQUARES: tl.constexpr):  # fmt: skip
    """A channel block's (x - mean) ** 2 (SQUARES) or x, summed tile-wise over its positions; masked lanes add 0."""
    total = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
    for s_start in tl.range(0, whole_positions, BLOCK_S):
        x = _load(at + s_start, _mask(channel_tail, position_tail, MASK_C, False), MASK_C)
        if SQUARES:
            x = x - mean
            if MASK_C:
                x = tl.where(_mask(channel_tail, position_tail, True, False), x, 0.0)
            x = x * x
        total += x
    if HAS_TAIL:
        mask = _mask(channel_tail, position_tail, MASK_C, True)
        x = _load(at + whole_positions, mask, True)
        if SQUARES:
            x = tl.where(mask, x - mean, 0.0)
            x = x * x
        total += x
    return total


@triton.jit
def _normalise_block(x_at, y_at, whole_positions, channel_tail, position_tail, scale, shift,
                     BLOCK_S: tl.constexpr, HAS_TAIL: tl.constexpr, MASK_C: tl.constexpr):  # fmt: skip
    """y = x * scale + shift over a channel block (scale and shift per channel)."""
    for s_start in tl.range(0, whole_positions, BLOCK_S):
        mask = _mask(channel_tail, position_tail, MASK_C, False)
        y = _load(x_at + s_start, mask, MASK_C) * scale + shift
        _store(y_at + s_start, y.to(y_at.dtype.element_ty), mask, MASK_C)
    if HAS_TAIL:
        mask = _mask(channel_tail, position_tail, MASK_C, True)
        y = _load(x_at + whole_positions, mask, True) * scale + shift
        tl.store(y_at + whole_positions, y.to(y_at.dtype.element_ty), mask=mask)


@triton.jit
def _forward_block(x_row, y_row, W, B, c_start, first_channel, tile_channels, tile, n_positions, whole_positions,
                   channel_tail, position_tail, mean, rstd,
                   HAS_BIAS: tl.constexpr, BLOCK_S: tl.constexpr, HAS_TAIL: tl.constexpr, MASK_C: tl.constexpr):  # fmt: skip
    channels = first_channel + c_start + tile_channels
    scale = rstd * _weights(W, channels, channel_tail, MASK_C)
    shift = -mean * scale
    if HAS_BIAS:
        shift += _weights(B, channels, channel_tail, MASK_C)
    offsets = c_start * n_positions + tile
    _normalise_block(x_row + offsets, y_row + offsets, whole_positions, channel_tail, position_tail, scale, shift,
                     BLOCK_S, HAS_TAIL, MASK_C)  # fmt: skip


@triton.jit
def _group_norm_forward(
    X, x_row_stride, Y, W, B, MEAN, RSTD,
    n_rows, n_groups, channels_per_group, n_positions, whole_channels, whole_positions, eps,
    HAS_BIAS: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
    HAS_C_TAIL: tl.constexpr, HAS_TAIL: tl.constexpr, SINGLE_TILE: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0).to(tl.int64)
    row_width = channels_per_group * n_positions
    tile_channels, tile, channel_tail, position_tail = _group_tiles(
        channels_per_group, n_positions, whole_channels, whole_positions, BLOCK_C, BLOCK_S
    )
    for row in tl.range(pid, n_rows, tl.num_programs(0)):
        x_row = X + row * x_row_stride
        first_channel = (row % n_groups) * channels_per_group
        y_row = Y + row * row_width
        if SINGLE_TILE:
            # the row is loaded once
            mask = _mask(channel_tail, position_tail, HAS_C_TAIL, HAS_TAIL)
            x = _load(x_row + tile, mask, HAS_C_TAIL or HAS_TAIL)
            mean = tl.sum(tl.sum(x, axis=1), axis=0) / row_width
            centred = x - mean
            if HAS_C_TAIL or HAS_TAIL:
                centred = tl.where(mask, centred, 0.0)
            rstd = 1.0 / tl.sqrt(tl.sum(tl.sum(centred * centred, axis=1), axis=0) / row_width + eps)
            y = centred * (rstd * _weights(W, first_channel + tile_channels, channel_tail, HAS_C_TAIL))
            if HAS_BIAS:
                y += _weights(B, first_channel + tile_channels, channel_tail, HAS_C_TAIL)
            _store(y_row + tile, y.to(Y.dtype.element_ty), mask, HAS_C_TAIL or HAS_TAIL)
        else:
            total = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
            for c_start in tl.range(0, whole_channels, BLOCK_C):
                total += _sum_block(x_row + c_start * n_positions + tile, whole_positions, channel_tail,
                                    position_tail, 0.0, BLOCK_C, BLOCK_S, HAS_TAIL, False, False)  # fmt: skip
            if HAS_C_TAIL:
                total += _sum_block(x_row + whole_channels * n_positions + tile, whole_positions, channel_tail,
                                    position_tail, 0.0, BLOCK_C, BLOCK_S, HAS_TAIL, True, False)  # fmt: skip
            mean = tl.sum(tl.sum(total, axis=1), axis=0) / row_width
            squares = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
            for c_start in tl.range(0, whole_channels, BLOCK_C):
                squares += _sum_block(x_row + c_start * n_positions + tile, whole_positions, channel_tail,
                                      position_tail, mean, BLOCK_C, BLOCK_S, HAS_TAIL, False, True)  # fmt: skip
            if HAS_C_TAIL:
                squares += _sum_block(x_row + whole_channels * n_positions + tile, whole_positions, channel_tail,
                                      position_tail, mean, BLOCK_C, BLOCK_S, HAS_TAIL, True, True)  # fmt: skip
            rstd = 1.0 / tl.sqrt(tl.sum(tl.sum(squares, axis=1), axis=0) / row_width + eps)
            for c_start in tl.range(0, whole_channels, BLOCK_C):
                _forward_block(x_row, y_row, W, B, c_start, first_channel, tile_channels, tile, n_positions,
                               whole_positions, channel_tail, position_tail, mean, rstd,
                               HAS_BIAS, BLOCK_S, HAS_TAIL, False)  # fmt: skip
            if HAS_C_TAIL:
                _forward_block(x_row, y_row, W, B, whole_channels, first_channel, tile_channels, tile, n_positions,
                               whole_positions, channel_tail, position_tail, mean, rstd,
                               HAS_BIAS, BLOCK_S, HAS_TAIL, True)  # fmt: skip
        tl.store(MEAN + row, mean)
        tl.store(RSTD + row, rstd)


@triton.jit
def _terms_block(x_at, dy_at, whole_positions, channel_tail, position_tail, mean, rstd, w,
                 BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr, HAS_TAIL: tl.constexpr, MASK_C: tl.constexpr):  # fmt: skip
    """A channel block's backward terms summed tile-wise over its positions: g = dy * w, g * n, dy * n
    and dy (n the normalised x). Masked lanes load dy = 0 (and w = 0 past the group), so add 0."""
    g_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
    gn_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
    dyn_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
    dy_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
    for s_start in tl.range(0, whole_positions, BLOCK_S):
        mask = _mask(channel_tail, position_tail, MASK_C, False)
        n = (_load(x_at + s_start, mask, MASK_C) - mean) * rstd
        dy = _load(dy_at + s_start, mask, MASK_C)
        g_sum += dy * w
        gn_sum += dy * w * n
        dyn_sum += dy * n
        dy_sum += dy
    if HAS_TAIL:
        mask = _mask(channel_tail, position_tail, MASK_C, True)
        n = (_load(x_at + whole_positions, mask, True) - mean) * rstd
        dy = _load(dy_at + whole_positions, mask, True)
        g_sum += dy * w
        gn_sum += dy * w * n
        dyn_sum += dy * n
        dy_sum += dy
    return g_sum, gn_sum, dyn_sum, dy_sum


@triton.jit
def _dx_block(x_at, dy_at, dx_at, whole_positions, channel_tail, position_tail, mean, rstd, w, mean_g, mean_gn,
              BLOCK_S: tl.constexpr, HAS_TAIL: tl.constexpr, MASK_C: tl.constexpr):  # fmt: skip
    for s_start in tl.range(0, whole_positions, BLOCK_S):
        mask = _mask(channel_tail, position_tail, MASK_C, False)
        n = (_load(x_at + s_start, mask, MASK_C) - mean) * rstd
        dx = rstd * (_load(dy_at + s_start, mask, MASK_C) * w - mean_g - n * mean_gn)
        _store(dx_at + s_start, dx.to(dx_at.dtype.element_ty), mask, MASK_C)
    if HAS_TAIL:
        mask = _mask(channel_tail, position_tail, MASK_C, True)
        n = (_load(x_at + whole_positions, mask, True) - mean) * rstd
        dx = rstd * (_load(dy_at + whole_positions, mask, True) * w - mean_g - n * mean_gn)
        tl.store(dx_at + whole_positions, dx.to(dx_at.dtype.element_ty), mask=mask)


@triton.jit
def _backward_sums(x_row, dy_row, W, DW_PARTIAL, DB_PARTIAL, row, c_start, first_channel, tile_channels, tile,
                   channels_per_group, n_positions, whole_positions, channel_tail, position_tail, mean, rstd,
                   COMPUTE_DW: tl.constexpr, COMPUTE_DB: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
                   HAS_TAIL: tl.constexpr, MASK_C: tl.constexpr):  # fmt: skip
    """A channel block's terms: its dweight and dbias entries stored, its g and g * n sums returned."""
    w = _weights(W, first_channel + c_start + tile_channels, channel_tail, MASK_C)
    offsets = c_start * n_positions + tile
    g_sum, gn_sum, dyn_sum, dy_sum = _terms_block(x_row + offsets, dy_row + offsets, whole_positions, channel_tail,
                                                  position_tail, mean, rstd, w, BLOCK_C, BLOCK_S, HAS_TAIL, MASK_C)  # fmt: skip
    # DW_PARTIAL and DB_PARTIAL are (N, C): row (n, g) owns entries row * (C / G) + [0, C / G)
    at = row * channels_per_group + c_start + tile_channels
    if COMPUTE_DW:
        _store(DW_PARTIAL + at, tl.sum(dyn_sum, axis=1), channel_tail, MASK_C)
    if COMPUTE_DB:
        _store(DB_PARTIAL + at, tl.sum(dy_sum, axis=1), channel_tail, MASK_C)
    return g_sum, gn_sum


@triton.jit
def _group_norm_backward(
    DY, dy_row_stride, DX, X, x_row_stride, W, MEAN, RSTD, DW_PARTIAL, DB_PARTIAL,
    n_rows, n_groups, channels_per_group, n_positions, whole_channels, whole_positions,
    COMPUTE_DX: tl.constexpr, COMPUTE_DW: tl.constexpr, COMPUTE_DB: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr, HAS_C_TAIL: tl.constexpr, HAS_TAIL: tl.constexpr,
    SINGLE_TILE: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0).to(tl.int64)
    row_width = channels_per_group * n_positions
    tile_channels, tile, channel_tail, position_tail = _group_tiles(
        channels_per_group, n_positions, whole_channels, whole_positions, BLOCK_C, BLOCK_S
    )
    for row in tl.range(pid, n_rows, tl.num_programs(0)):
        x_row = X + row * x_row_stride
        first_channel = (row % n_groups) * channels_per_group
        dy_row = DY + row * dy_row_stride
        dx_row = DX + row * row_width
        mean = tl.load(MEAN + row)
        rstd = tl.load(RSTD + row)
        if SINGLE_TILE:
            # the row is loaded once; masked lanes load dy = 0, so every term is 0 there
            mask = _mask(channel_tail, position_tail, HAS_C_TAIL, HAS_TAIL)
            n = (_load(x_row + tile, mask, HAS_C_TAIL or HAS_TAIL) - mean) * rstd
            dy = _load(dy_row + tile, mask, HAS_C_TAIL or HAS_TAIL)
            if COMPUTE_DX:
                g = dy * _weights(W, first_channel + tile_channels, channel_tail, HAS_C_TAIL)
                mean_g = tl.sum(tl.sum(g, axis=1), axis=0) / row_width
                mean_gn = tl.sum(tl.sum(g * n, axis=1), axis=0) / row_width
                dx = rstd * (g - mean_g - n * mean_gn)
                _store(dx_row + tile, dx.to(DX.dtype.element_ty), mask, HAS_C_TAIL or HAS_TAIL)
            at = row * channels_per_group + tile_channels
            if COMPUTE_DW:
                _store(DW_PARTIAL + at, tl.sum(dy * n, axis=1), channel_tail, HAS_C_TAIL)
            if COMPUTE_DB:
                _store(DB_PARTIAL + at, tl.sum(dy, axis=1), channel_tail, HAS_C_TAIL)
        else:
            g_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
            gn_sum = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
            for c_start in tl.range(0, whole_channels, BLOCK_C):
                g, gn = _backward_sums(x_row, dy_row, W, DW_PARTIAL, DB_PARTIAL, row, c_start, first_channel,
                                       tile_channels, tile, channels_per_group, n_positions, whole_positions,
                                       channel_tail, position_tail, mean, rstd,
                                       COMPUTE_DW, COMPUTE_DB, BLOCK_C, BLOCK_S, HAS_TAIL, False)  # fmt: skip
                g_sum, gn_sum = g_sum + g, gn_sum + gn
            if HAS_C_TAIL:
                g, gn = _backward_sums(x_row, dy_row, W, DW_PARTIAL, DB_PARTIAL, row, whole_channels,
                                       first_channel, tile_channels, tile, channels_per_group, n_positions,
                                       whole_positions, channel_tail, position_tail, mean, rstd,
                                       COMPUTE_DW, COMPUTE_DB, BLOCK_C, BLOCK_S, HAS_TAIL, True)  # fmt: skip
                g_sum, gn_sum = g_sum + g, gn_sum + gn
            if COMPUTE_DX:
                mean_g = tl.sum(tl.sum(g_sum, axis=1), axis=0) / row_width
                mean_gn = tl.sum(tl.sum(gn_sum, axis=1), axis=0) / row_width
                for c_start in tl.range(0, whole_channels, BLOCK_C):
                    w = _weights(W, first_channel + c_start + tile_channels, channel_tail, False)
                    offsets = c_start * n_positions + tile
                    _dx_block(x_row + offsets, dy_row + offsets, dx_row + offsets, whole_positions, channel_tail,
                              position_tail, mean, rstd, w, mean_g, mean_gn, BLOCK_S, HAS_TAIL, False)  # fmt: skip
                if HAS_C_TAIL:
                    w = _weights(W, first_channel + whole_channels + tile_channels, channel_tail, True)
                    offsets = whole_channels * n_positions + tile
                    _dx_block(x_row + offsets, dy_row + offsets, dx_row + offsets, whole_positions, channel_tail,
                              position_tail, mean, rstd, w, mean_g, mean_gn, BLOCK_S, HAS_TAIL, True)  # fmt: skip


class Tiles(NamedTuple):
    """A (``block_c`` channels x ``block_s`` positions) tile; ``single``: one tile holds the whole group."""

    block_c: int
    block_s: int
    single: bool

    def constants(self, channels_per_group: int, n_positions: int) -> dict[str, Any]:
        return {
            "BLOCK_C": self.block_c,
            "BLOCK_S": self.block_s,
            "HAS_C_TAIL": channels_per_group % self.block_c != 0,
            "HAS_TAIL": n_positions % self.block_s != 0,
            "SINGLE_TILE": self.single,
        }

    def whole(self, channels_per_group: int, n_positions: int) -> tuple[int, int]:
        """Channels and positions walked in whole, unmasked blocks (the rest is the masked tail)."""
        return channels_per_group - channels_per_group % self.block_c, n_positions - n_positions % self.block_s


def tiles(
    kernel: Any, dtype: torch.dtype, device: torch.device, channels_per_group: int, n_positions: int,
    *itemsizes: int,
) -> Tiles:  # fmt: skip
    """The tile of ``kernel`` for a group of ``channels_per_group`` x
    ``n_positions``, for tensors of ``itemsizes`` bytes per element, sized by
    the kernel's calibrated UB cost (the most expensive of its variants of
    ``dtype``: which tails it has depends on the tile): the whole group when
    it fits (channels and positions rounded up to powers of two, the tails
    masked), else the widest run of positions that fits (contiguous), then as
    many channels as still fit. One channel when a position row of a tensor
    is not 32-byte aligned (no pitch: one position per channel is a contiguous
    run of channels, so S = 1 is never refused)."""
    check_npu_dtype("group_norm", dtype)
    budget = device_profile(device).onchip_bytes
    cost = ub_calibration.worst_cost(kernel_name(kernel), ub_calibration.triton_dtype(dtype))
    aligned = n_positions == 1 or all(n_positions * size % PITCH_ALIGN_BYTES == 0 for size in itemsizes)
    all_s = next_power_of_2(n_positions)
    all_c = next_power_of_2(channels_per_group) if aligned else 1
    if all_c >= channels_per_group and cost.bytes(all_c, all_s) <= budget:
        return Tiles(all_c, all_s, single=True)
    block_s = prev_power_of_2(all_s)
    while block_s > 1 and cost.bytes(1, block_s) > budget:
        block_s //= 2
    if cost.bytes(1, block_s) > budget:
        raise ValueError(f"liger-ascend group_norm: not even a 1 x 1 tile fits the {budget}-byte UB budget")
    block_c = 1
    while block_c * 2 <= all_c and cost.bytes(block_c * 2, block_s) <= budget:
        block_c *= 2
    return Tiles(block_c, block_s, single=False)


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
            plan = tiles(_group_norm_forward, X.dtype, X.device, channels_per_group, n_positions, X.element_size())
            _group_norm_forward[(profile.grid(n_rows),)](
                x_rows, x_rows.stride(0), y, weight, bias if bias is not None else weight, mean, rstd,
                n_rows, num_groups, channels_per_group, n_positions, *plan.whole(channels_per_group, n_positions),
                eps, HAS_BIAS=bias is not None, **plan.constants(channels_per_group, n_positions),
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
            plan = tiles(
                _group_norm_backward, x_rows.dtype, device, channels_per_group, n_positions,
                x_rows.element_size(), dy_rows.element_size(),
            )  # fmt: skip
            _group_norm_backward[(profile.grid(n_rows),)](
                dy_rows, dy_rows.stride(0), dx if dx is not None else dy_rows, x_rows, x_rows.stride(0), weight,
                mean, rstd, partials[0] if partials is not None else rstd, partials[1] if partials is not None else rstd,
                n_rows, ctx.num_groups, channels_per_group, n_positions, *plan.whole(channels_per_group, n_positions),
                COMPUTE_DX=needs_dx, COMPUTE_DW=needs_dw, COMPUTE_DB=needs_db,
                **plan.constants(channels_per_group, n_positions),
            )  # fmt: skip
        dw = db = None
        if partials is not None:
            totals = partials.sum(1)
            dw = totals[0].to(weight.dtype) if needs_dw else None
            # a copy: gradients returned together must not share storage
            db = totals[1].to(ctx.bias_dtype, copy=True) if needs_db else None
        return (dx.view(ctx.x_shape) if dx is not None else None), dw, db, None, None, None


__all__ = ["GroupNormFunction"]
