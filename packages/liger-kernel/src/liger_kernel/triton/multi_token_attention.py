"""Multi-token attention, portable Triton kernels
(math: :mod:`liger_kernel.ops.multi_token_attention`).

Four kernels, each a persistent grid over rows of an L x L (or Lo x Lo) plane,
walking a row in 1-D column blocks (a 1-D tile has no row pitch, which the
NPU's DMA needs 32-byte aligned, and the convolution's taps are scalar
weights, so there is no matrix product to feed):

* ``_mta_probs_kernel``: P, one row (b, c, i) at a time, over its causal
  prefix (keys 0..i: half the plane's work and reads); keys past i are
  written 0. Softmax in two passes (max, then sum and write) when the row is
  wider than a block; sparsemax by the same Michelot iteration, residual
  refinement and tie rule as :mod:`liger_kernel.triton.sparsemax`, whose
  block helpers it calls.
* ``_mta_conv_kernel``: out, one output row (b, o, i) at a time. Each column
  block at or below the diagonal sums weight[o, c, kh, kw] * P[b, c, y, x]
  over the group's channels and the taps, with y = i*sh - ph + kh*dh a scalar
  per tap and x = j*sw - pw + kw*dw; blocks past the diagonal are only written
  0. The taps re-read neighbouring rows of P, which stay in cache.
* ``_mta_grad_scores_kernel``: dscores, one row (b, c, y) at a time: dP over
  the row's causal prefix as the transposed convolution (oy = (y + ph -
  kh*dh) / sh when it divides, likewise ox), gathered from the masked
  grad_out, then the softmax or sparsemax backward of the row. A row that
  fits a block stays in registers; a wider one parks dP in an fp32 row buffer
  between its two passes.
* ``_mta_grad_weight_kernel``: each program item is one weight (or one bias
  entry) and one chunk of output rows; it sums grad_out * P over its chunk's
  causal prefixes into one fp32 partial, and the launcher adds the chunks'
  partials (no atomics: the result is deterministic).

P is saved for the backward in the scores' dtype (the one L x L tensor the
op keeps; softmax's backward reads P, sparsemax's its support).
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.backend import DeviceProfile
from liger_kernel.dispatch import device_profile
from liger_kernel.ops.multi_token_attention import pair
from liger_kernel.triton.launch import MIN_BLOCK, accumulator_dtype, launch, row_block
from liger_kernel.triton.sparsemax import (
    TIE_EPS,
    _refined,
    _support_step,
    _wide_residual,
    _wide_support_step,
    sparsemax_launch,
)

#: the most (column x tap) lanes of one block of the convolution kernels
CONV_ELEMENTS = 2048


@triton.jit
def _row_probs(z, tie_eps, SPARSE: tl.constexpr):
    """softmax or sparsemax of one shifted row z = x - max(x) held in a block
    (masked lanes -inf: they get 0)."""
    if SPARSE:
        threshold = tl.max(z, axis=0) - 1.0
        size, tau = _support_step(z, threshold)
        previous_size = size + 1
        while size != previous_size:
            previous_size = size
            threshold = tl.maximum(threshold, tau)
            size, tau = _support_step(z, threshold)
        residual = tl.sum(tl.where(z > threshold, z - tau, 0.0), axis=0) - 1.0
        tau, tie = _refined(tau, residual, size, tie_eps)
        y = z - tau
        probs = tl.where(y > tie, y, 0.0)
    else:
        e = tl.exp(z)
        probs = e / tl.sum(e, axis=0)
    return probs


@triton.jit
def _mta_probs_kernel(
    S,
    P,
    n_rows,
    L,
    tie_eps,
    SPARSE: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE_BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    for row in tl.range(pid, n_rows, tl.num_programs(0)):
        # query i attends to keys 0..i
        valid = row % L + 1
        row_start = row * L
        if SINGLE_BLOCK:
            x = tl.load(S + row_start + cols, mask=cols < valid, other=-float("inf")).to(ACC)
            probs = _row_probs(x - tl.max(x, axis=0), tie_eps, SPARSE)
            tl.store(P + row_start + cols, probs.to(P.dtype.element_ty), mask=cols < L)
        else:
            maxima = tl.full([BLOCK], -float("inf"), dtype=ACC)
            for start in tl.range(0, valid, BLOCK):
                x = tl.load(S + row_start + start + cols, mask=start + cols < valid, other=-float("inf")).to(ACC)
                maxima = tl.maximum(maxima, x)
            row_max = tl.max(maxima, axis=0)
            if SPARSE:
                threshold = row_max - row_max - 1.0
                size, tau = _wide_support_step(S, row_start, row_max, threshold, valid, ACC, BLOCK)
                previous_size = size + 1
                while size != previous_size:
                    previous_size = size
                    threshold = tl.maximum(threshold, tau)
                    size, tau = _wide_support_step(S, row_start, row_max, threshold, valid, ACC, BLOCK)
                residual = _wide_residual(S, row_start, row_max, threshold, tau, valid, ACC, BLOCK)
                shift, tie = _refined(tau, residual, size, tie_eps)
                scale = row_max - row_max + 1.0
            else:
                sums = tl.zeros([BLOCK], dtype=ACC)
                for start in tl.range(0, valid, BLOCK):
                    x = tl.load(S + row_start + start + cols, mask=start + cols < valid, other=-float("inf"))
                    sums += tl.exp(x.to(ACC) - row_max)
                scale = 1.0 / tl.sum(sums, axis=0)
                shift = row_max - row_max
                tie = shift
            for start in tl.range(0, L, BLOCK):
                x = tl.load(S + row_start + start + cols, mask=start + cols < valid, other=-float("inf"))
                z = x.to(ACC) - row_max
                if SPARSE:
                    y = z - shift
                    probs = tl.where(y > tie, y, 0.0)
                else:
                    probs = tl.exp(z) * scale
                tl.store(P + row_start + start + cols, probs.to(P.dtype.element_ty), mask=start + cols < L)


@triton.jit
def _taps(j, TAPS: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, COLS: tl.constexpr):
    """A flat block of COLS columns x TAPS kernel taps (KH * KW of them, padded
    to a power of two): lane e is column j[e // TAPS] at tap e % TAPS. One
    gather then reads every tap of a column block, and a reshape to
    (COLS, TAPS) sums them per column."""
    lanes = tl.arange(0, COLS * TAPS)
    tap = lanes % TAPS
    column = tl.reshape(tl.broadcast_to(j[:, None], (COLS, TAPS)), (COLS * TAPS,))
    return column, tap // KW, tap % KW, tap, tap < KH * KW


@triton.jit
def _mta_conv_kernel(
    P,
    W,
    BIAS,
    OUT,
    n_rows,
    L,
    Lo,
    c_in,
    c_out,
    cin_per_group,
    cout_per_group,
    sh,
    sw,
    ph,
    pw,
    dh,
    dw,
    HAS_BIAS: tl.constexpr,
    KH: tl.constexpr,
    KW: tl.constexpr,
    TAPS: tl.constexpr,
    ACC: tl.constexpr,
    COLS: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, COLS)
    for row in tl.range(pid, n_rows, tl.num_programs(0)):
        i = row % Lo
        plane = row // Lo
        co = plane % c_out
        b = plane // c_out
        first_channel = b * c_in + (co // cout_per_group) * cin_per_group
        w_base = co * cin_per_group * KH * KW
        for start in tl.range(0, Lo, COLS):
            j = start + cols
            acc = tl.zeros([COLS], dtype=ACC)
            # column blocks past the diagonal are all 0
            if start <= i:
                column, kh, kw, tap, tap_ok = _taps(j, TAPS, KH, KW, COLS)
                y = i * sh - ph + kh * dh
                x = column * sw - pw + kw * dw
                # P is 0 past its own diagonal (x > y) and outside the plane: not read
                m = tap_ok & (column <= i) & (x >= 0) & (x <= y) & (y < L)
                for channel in tl.range(0, cin_per_group):
                    p_plane = (first_channel + channel) * L
                    v = tl.load(P + (p_plane + y) * L + x, mask=m, other=0.0).to(ACC)
                    weight = tl.load(W + w_base + channel * KH * KW + tap, mask=tap_ok, other=0.0).to(ACC)
                    acc += tl.sum(tl.reshape(weight * v, (COLS, TAPS)), axis=1)
                if HAS_BIAS:
                    acc += tl.load(BIAS + co).to(ACC)
                acc = tl.where(j <= i, acc, 0.0)
            tl.store(OUT + row * Lo + j, acc.to(OUT.dtype.element_ty), mask=j < Lo)


@triton.jit
def _grad_probs_block(
    W,
    G,
    b,
    group,
    channel,
    y,
    x,
    Lo,
    c_out,
    cin_per_group,
    cout_per_group,
    sh,
    sw,
    ph,
    pw,
    dh,
    dw,
    KH: tl.constexpr,
    KW: tl.constexpr,
    TAPS: tl.constexpr,
    ACC: tl.constexpr,
    COLS: tl.constexpr,
):
    """dP[b, c, y, x] for a block of columns x <= y: the transposed convolution of the masked grad_out."""
    column, kh, kw, tap, tap_ok = _taps(x, TAPS, KH, KW, COLS)
    oy_num = y + ph - kh * dh
    ox_num = column + pw - kw * dw
    oy = oy_num // sh
    ox = ox_num // sw
    # a tap reaches grad_out where the strides divide, within the plane, at and
    # below its diagonal (ox <= oy < Lo); grad_out counts nowhere else
    m = tap_ok & (column <= y) & (oy_num >= 0) & (oy_num % sh == 0) & (oy < Lo)
    m = m & (ox_num >= 0) & (ox_num % sw == 0) & (ox <= oy)
    dp = tl.zeros([COLS], dtype=ACC)
    for out_channel in tl.range(0, cout_per_group):
        co = group * cout_per_group + out_channel
        g = tl.load(G + ((b * c_out + co) * Lo + oy) * Lo + ox, mask=m, other=0.0).to(ACC)
        w_base = (co * cin_per_group + channel) * KH * KW
        weight = tl.load(W + w_base + tap, mask=tap_ok, other=0.0).to(ACC)
        dp += tl.sum(tl.reshape(weight * g, (COLS, TAPS)), axis=1)
    return dp


@triton.jit
def _mta_grad_scores_kernel(
    P,
    W,
    G,
    DS,
    DP,
    n_rows,
    L,
    Lo,
    c_in,
    c_out,
    cin_per_group,
    cout_per_group,
    sh,
    sw,
    ph,
    pw,
    dh,
    dw,
    SPARSE: tl.constexpr,
    KH: tl.constexpr,
    KW: tl.constexpr,
    TAPS: tl.constexpr,
    ACC: tl.constexpr,
    COLS: tl.constexpr,
    SINGLE_BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, COLS)
    for row in tl.range(pid, n_rows, tl.num_programs(0)):
        y = row % L
        plane = row // L
        c = plane % c_in
        b = plane // c_in
        group = c // cin_per_group
        channel = c % cin_per_group
        valid = y + 1
        row_start = row * L
        if SINGLE_BLOCK:
            dp = _grad_probs_block(
                W, G, b, group, channel, y, cols, Lo, c_out, cin_per_group, cout_per_group,
                sh, sw, ph, pw, dh, dw, KH, KW, TAPS, ACC, COLS,
            )  # fmt: skip
            p = tl.load(P + row_start + cols, mask=cols < valid, other=0.0).to(ACC)
            if SPARSE:
                support = p > 0.0
                mean = tl.sum(tl.where(support, dp, 0.0), axis=0) / tl.sum(support.to(tl.int32), axis=0)
                ds = tl.where(support, dp - mean, 0.0)
            else:
                ds = p * (dp - tl.sum(p * dp, axis=0))
            tl.store(DS + row_start + cols, ds.to(DS.dtype.element_ty), mask=cols < L)
        else:
            sums = tl.zeros([COLS], dtype=ACC)
            sizes = tl.zeros([COLS], dtype=tl.int32)
            for start in tl.range(0, valid, COLS):
                x = start + cols
                dp = _grad_probs_block(
                    W, G, b, group, channel, y, x, Lo, c_out, cin_per_group, cout_per_group,
                    sh, sw, ph, pw, dh, dw, KH, KW, TAPS, ACC, COLS,
                )  # fmt: skip
                tl.store(DP + row_start + x, dp, mask=x < valid)
                p = tl.load(P + row_start + x, mask=x < valid, other=0.0).to(ACC)
                if SPARSE:
                    sums += tl.where(p > 0.0, dp, 0.0)
                    sizes += (p > 0.0).to(tl.int32)
                else:
                    sums += p * dp
            total = tl.sum(sums, axis=0)
            if SPARSE:
                total = total / tl.sum(sizes, axis=0)
            for start in tl.range(0, L, COLS):
                x = start + cols
                dp = tl.load(DP + row_start + x, mask=x < valid, other=0.0).to(ACC)
                p = tl.load(P + row_start + x, mask=x < valid, other=0.0).to(ACC)
                if SPARSE:
                    ds = tl.where(p > 0.0, dp - total, 0.0)
                else:
                    ds = p * (dp - total)
                tl.store(DS + row_start + x, ds.to(DS.dtype.element_ty), mask=x < L)


@triton.jit
def _mta_grad_weight_kernel(
    P,
    G,
    PARTIALS,
    n_items,
    n_chunks,
    n_filters,
    n_out_rows,
    L,
    Lo,
    c_in,
    c_out,
    cin_per_group,
    cout_per_group,
    sh,
    sw,
    ph,
    pw,
    dh,
    dw,
    KH: tl.constexpr,
    KW: tl.constexpr,
    TAPS: tl.constexpr,
    ACC: tl.constexpr,
    COLS: tl.constexpr,
):
    """Item (target, chunk): target < n_filters is the filter weight[co, c_local]
    (all its taps at once, one partial per tap), a later one bias[target - n_filters]."""
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, COLS)
    for item in tl.range(pid, n_items, tl.num_programs(0)):
        target = item // n_chunks
        chunk = item % n_chunks
        acc = tl.zeros([COLS * TAPS], dtype=ACC)
        if target < n_filters:
            channel = target % cin_per_group
            co = target // cin_per_group
            c = (co // cout_per_group) * cin_per_group + channel
            for out_row in tl.range(chunk, n_out_rows, n_chunks):
                b = out_row // Lo
                i = out_row % Lo
                g_row = ((b * c_out + co) * Lo + i) * Lo
                p_plane = (b * c_in + c) * L
                for start in tl.range(0, i + 1, COLS):
                    column, kh, kw, tap, tap_ok = _taps(start + cols, TAPS, KH, KW, COLS)
                    y = i * sh - ph + kh * dh
                    x = column * sw - pw + kw * dw
                    g = tl.load(G + g_row + column, mask=tap_ok & (column <= i), other=0.0).to(ACC)
                    m = tap_ok & (column <= i) & (x >= 0) & (x <= y) & (y < L)
                    p = tl.load(P + (p_plane + y) * L + x, mask=m, other=0.0).to(ACC)
                    acc += g * p
            per_tap = tl.sum(tl.reshape(acc, (COLS, TAPS)), axis=0)
            taps = tl.arange(0, TAPS)
            tl.store(PARTIALS + item * TAPS + taps, per_tap, mask=taps < KH * KW)
        else:
            # a bias entry: the sum of the masked grad_out of its channel
            co = target - n_filters
            for out_row in tl.range(chunk, n_out_rows, n_chunks):
                b = out_row // Lo
                i = out_row % Lo
                g_row = ((b * c_out + co) * Lo + i) * Lo
                for start in tl.range(0, i + 1, COLS):
                    column, kh, kw, tap, tap_ok = _taps(start + cols, TAPS, KH, KW, COLS)
                    acc += tl.load(G + g_row + column, mask=(tap == 0) & (column <= i), other=0.0).to(ACC)
            tl.store(PARTIALS + item * TAPS, tl.sum(acc, axis=0))


def _geometry(scores: torch.Tensor, weight: torch.Tensor, stride: Any, padding: Any, dilation: Any, groups: int):
    """The scalar arguments every convolution kernel takes, after its pointers and row count."""
    _, c_in, length, _ = scores.shape
    c_out, cin_per_group, kh, _ = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = pair("stride", stride, 1), pair("padding", padding, 0), pair("dilation", dilation, 1)
    out_length = (length + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    return out_length, (c_in, c_out, cin_per_group, c_out // groups, sh, sw, ph, pw, dh, dw)


def conv_block(profile: DeviceProfile, width: int, taps: int) -> int:
    """Columns per block of the convolution kernels: a row of ``width`` in one
    block where (columns x taps) stays within CONV_ELEMENTS."""
    return max(MIN_BLOCK, min(row_block(width, profile), CONV_ELEMENTS // taps))


def conv_warps(profile: DeviceProfile, cols: int, taps: int) -> int:
    """Warps of the convolution kernels: four lanes of the (columns x taps) block
    per thread, not the profile's eight, as each lane keeps its column, tap
    offsets, mask, weight and value live (eight per thread spill on gfx942)."""
    return profile.num_warps(2 * cols * taps)


def _math_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


class MultiTokenAttentionFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        scores: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        sparse: bool = False,
    ) -> torch.Tensor:
        scores_c, weight_c = scores.contiguous(), weight.contiguous()
        batch, c_in, length, _ = scores.shape
        out_length, geometry = _geometry(scores, weight, stride, padding, dilation, groups)
        c_out, _, kh, kw = weight.shape
        taps = triton.next_power_of_2(kh * kw)
        probs = torch.empty_like(scores_c)
        out = torch.empty((batch, c_out, out_length, out_length), dtype=scores.dtype, device=scores.device)
        acc = accumulator_dtype(scores.dtype)
        profile = device_profile(scores.device)
        rows = batch * c_in * length
        if rows:
            plan = sparsemax_launch(profile, rows, length)
            launch(
                profile,
                _mta_probs_kernel,
                plan.grid,
                scores_c,
                probs,
                rows,
                length,
                TIE_EPS[scores.dtype == torch.float64],
                SPARSE=sparse,
                ACC=acc,
                BLOCK=plan.block,
                SINGLE_BLOCK=plan.block >= length,
                num_warps=plan.num_warps,
            )
        out_rows = batch * c_out * out_length
        if out_rows:
            cols = conv_block(profile, out_length, taps)
            launch(
                profile,
                _mta_conv_kernel,
                profile.grid(out_rows),
                probs,
                weight_c,
                weight_c if bias is None else bias.contiguous(),
                out,
                out_rows,
                length,
                out_length,
                *geometry,
                HAS_BIAS=bias is not None,
                KH=kh,
                KW=kw,
                TAPS=taps,
                ACC=acc,
                COLS=cols,
                num_warps=conv_warps(profile, cols, taps),
            )
        ctx.save_for_backward(probs, weight_c)
        ctx.geometry, ctx.out_length, ctx.sparse, ctx.has_bias = geometry, out_length, sparse, bias is not None
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        probs, weight = ctx.saved_tensors
        batch, c_in, length, _ = probs.shape
        c_out, cin_per_group, kh, kw = weight.shape
        taps = triton.next_power_of_2(kh * kw)
        out_length, geometry = ctx.out_length, ctx.geometry
        grad = grad_out.contiguous()
        acc = accumulator_dtype(probs.dtype)
        profile = device_profile(probs.device)
        grad_scores = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_scores = torch.empty_like(probs)
            rows = batch * c_in * length
            if rows:
                cols = conv_block(profile, length, taps)
                single_block = cols >= length
                # dP's row buffer, only for rows wider than a block
                scratch = (
                    grad_scores
                    if single_block
                    else torch.empty(probs.shape, dtype=_math_dtype(probs.dtype), device=probs.device)
                )
                launch(
                    profile,
                    _mta_grad_scores_kernel,
                    profile.grid(rows),
                    probs,
                    weight,
                    grad,
                    grad_scores,
                    scratch,
                    rows,
                    length,
                    out_length,
                    *geometry,
                    SPARSE=ctx.sparse,
                    KH=kh,
                    KW=kw,
                    TAPS=taps,
                    ACC=acc,
                    COLS=cols,
                    SINGLE_BLOCK=single_block,
                    num_warps=conv_warps(profile, cols, taps),
                )
        want_weight = ctx.needs_input_grad[1]
        want_bias = ctx.has_bias and ctx.needs_input_grad[2]
        if want_weight or want_bias:
            n_filters = c_out * cin_per_group if want_weight else 0
            targets = n_filters + (c_out if want_bias else 0)
            out_rows = batch * out_length
            # about one item per program of the grid, each a chunk of at least one output row
            chunks = max(1, min(out_rows, -(-profile.grid(1 << 30) // targets)))
            partials = torch.zeros((targets, chunks, taps), dtype=_math_dtype(probs.dtype), device=probs.device)
            cols = conv_block(profile, out_length, taps)
            launch(
                profile,
                _mta_grad_weight_kernel,
                profile.grid(targets * chunks),
                probs,
                grad,
                partials,
                targets * chunks,
                chunks,
                n_filters,
                out_rows,
                length,
                out_length,
                *geometry,
                KH=kh,
                KW=kw,
                TAPS=taps,
                ACC=acc,
                COLS=cols,
                num_warps=conv_warps(profile, cols, taps),
            )
            sums = partials.sum(dim=1)
            if want_weight:
                grad_weight = sums[:n_filters, : kh * kw].reshape(weight.shape).to(weight.dtype)
            if want_bias:
                grad_bias = sums[n_filters:, 0].to(weight.dtype)
        return grad_scores, grad_weight, grad_bias, None, None, None, None, None
