"""mHC, portable Triton kernels (math: :mod:`liger_kernel.ops.mhc`).

Coefficients. ``_mhc_mm_norm_forward_kernel`` reads x once as (N, K) tiles and
keeps (BLOCK_N, BLOCK_M) accumulators of x @ phi beside the sum of squares; M
(24 logits at HC = 4) rarely needs more than one column block. Two 16-bit
operands of one dtype go to the dot as they are; otherwise both are upcast
to float32 and the dot runs at the backend's default float32 precision,
which is exact for 16-bit values (TF32 holds a float16 or bfloat16 exactly),
or at IEEE precision when x or phi is float32 itself.
``_mhc_sinkhorn_forward_kernel`` turns the (N, M) float32 ``mix`` into the
coefficients, BLOCK_T tokens at a time as (BLOCK_T, HC, HC) tiles (HC padded
to a power of two with masked lanes kept at exactly zero).

The forward keeps only mix and invr (N * (M + 1) floats). The backward kernel
recomputes each token block's Sinkhorn history into a scratch area owned by
its program (bounded by the grid, not by N), walks it back, and writes
grad_mix and per-program partial sums of grad_b and the alpha gradients,
summed afterwards in a fixed order (the products' precision is stated in the
op's contract). ``_mhc_mm_norm_backward_kernel`` then
reads x once more: each program owns a column block of K and a share of
the token blocks, stores dx and keeps its (BLOCK_K, M) share of dphi in
registers, one partial per token share (no atomics).

Pre and post/residual. One program walks BLOCK_T tokens over C in BLOCK_C
columns, a static loop over the HC streams, so every element of x, f_out
and the gradients is read once; the coefficient gradients (sums over C) stay
in registers until the token block ends.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.backend import DeviceProfile
from liger_kernel.dispatch import device_profile
from liger_kernel.ops.mhc import streams_of
from liger_kernel.triton.launch import MIN_BLOCK, launch

# -----------------------------------------------------------------------------------------------
# coefficients: x @ phi and the RMS scale
# -----------------------------------------------------------------------------------------------


@triton.jit
def _dot(a, b, PRECISE: tl.constexpr):
    if PRECISE:
        return tl.dot(a, b, input_precision="ieee")
    return tl.dot(a, b)


@triton.jit
def _mhc_mm_norm_forward_kernel(
    X,
    PHI,
    MIX,
    INVR,
    n_tokens,
    K,
    M,
    eps,
    UPCAST: tl.constexpr,
    PRECISE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    pid = tl.program_id(0)
    m_blocks = tl.cdiv(M, BLOCK_M)
    tiles = tl.cdiv(n_tokens, BLOCK_N) * m_blocks
    for tile in tl.range(pid, tiles, tl.num_programs(0)):
        rows = (tile // m_blocks) * BLOCK_N + tl.arange(0, BLOCK_N)
        m_block = tile % m_blocks
        cols = m_block * BLOCK_M + tl.arange(0, BLOCK_M)
        row_mask = rows < n_tokens
        col_mask = cols < M
        rows64 = rows.to(tl.int64)
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        sumsq = tl.zeros((BLOCK_N,), dtype=tl.float32)
        for k0 in tl.range(0, K, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            k_mask = ks < K
            x = tl.load(X + rows64[:, None] * K + ks[None, :], mask=row_mask[:, None] & k_mask[None, :], other=0.0)
            phi = tl.load(PHI + ks[:, None] * M + cols[None, :], mask=k_mask[:, None] & col_mask[None, :], other=0.0)
            xf = x.to(tl.float32)
            sumsq += tl.sum(xf * xf, axis=1)
            if UPCAST:
                acc += _dot(xf, phi.to(tl.float32), PRECISE)
            else:
                acc += tl.dot(x, phi)
        # rows past the end hold 0: a divisor of 1 keeps them finite at eps = 0
        invr = 1.0 / tl.sqrt(tl.where(row_mask, sumsq / K + eps, 1.0))
        tl.store(
            MIX + rows64[:, None] * M + cols[None, :], acc * invr[:, None], mask=row_mask[:, None] & col_mask[None, :]
        )
        if m_block == 0:
            tl.store(INVR + rows, invr, mask=row_mask)


@triton.jit
def _mhc_mm_norm_backward_kernel(
    X,
    PHI,
    MIX,
    INVR,
    GRAD_MIX,
    DX,
    DPHI_PARTIAL,
    n_tokens,
    K,
    M,
    token_blocks_per_share,
    COMPUTE_DX: tl.constexpr,
    COMPUTE_DPHI: tl.constexpr,
    PRECISE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    # dz = grad_mix * invr; dx = dz @ phi^T - (sum_m grad_mix * mix) * invr^2 / K * x; dphi = x^T @ dz
    pid = tl.program_id(0)
    k_blocks = tl.cdiv(K, BLOCK_K)
    share = pid // k_blocks
    ks = (pid % k_blocks) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_mask = ks < K
    cols = tl.arange(0, BLOCK_M)
    col_mask = cols < M
    phi = tl.load(PHI + ks[:, None] * M + cols[None, :], mask=k_mask[:, None] & col_mask[None, :], other=0.0)
    phi = phi.to(tl.float32)
    dphi = tl.zeros((BLOCK_K, BLOCK_M), dtype=tl.float32)
    first = share * token_blocks_per_share
    last = tl.minimum(first + token_blocks_per_share, tl.cdiv(n_tokens, BLOCK_N))
    for token_block in tl.range(first, last):
        rows = token_block * BLOCK_N + tl.arange(0, BLOCK_N)
        row_mask = rows < n_tokens
        rows64 = rows.to(tl.int64)
        tile_mask = row_mask[:, None] & col_mask[None, :]
        grad_mix = tl.load(GRAD_MIX + rows64[:, None] * M + cols[None, :], mask=tile_mask, other=0.0)
        invr = tl.load(INVR + rows, mask=row_mask, other=0.0)
        grad_z = grad_mix * invr[:, None]
        x_mask = row_mask[:, None] & k_mask[None, :]
        x = tl.load(X + rows64[:, None] * K + ks[None, :], mask=x_mask, other=0.0).to(tl.float32)
        if COMPUTE_DX:
            mix = tl.load(MIX + rows64[:, None] * M + cols[None, :], mask=tile_mask, other=0.0)
            row_term = tl.sum(grad_mix * mix, axis=1) * invr * invr / K
            dx = _dot(grad_z, tl.trans(phi), PRECISE) - row_term[:, None] * x
            tl.store(DX + rows64[:, None] * K + ks[None, :], dx.to(DX.dtype.element_ty), mask=x_mask)
        if COMPUTE_DPHI:
            dphi += _dot(tl.trans(x), grad_z, PRECISE)
    if COMPUTE_DPHI:
        out = DPHI_PARTIAL + share.to(tl.int64) * K * M
        tl.store(out + ks[:, None] * M + cols[None, :], dphi, mask=k_mask[:, None] & col_mask[None, :])


# -----------------------------------------------------------------------------------------------
# coefficients: sigmoids and Sinkhorn
# -----------------------------------------------------------------------------------------------


# Each normalization divides by (sum + eps) on real lanes and by 1 on padded lanes and
# masked tokens, whose entries are 0: 0 / (0 + eps) would be nan at eps = 0, and a
# padded lane's gradient would grow by 1 / eps per step.


@triton.jit
def _row_divisor(a, mask3, eps):
    return tl.where(tl.max(mask3.to(tl.int32), axis=2) > 0, tl.sum(a, axis=2) + eps, 1.0)[:, :, None]


@triton.jit
def _column_divisor(a, mask3, eps):
    return tl.where(tl.max(mask3.to(tl.int32), axis=1) > 0, tl.sum(a, axis=1) + eps, 1.0)[:, None, :]


@triton.jit
def _row_normalized(a, mask3, eps):
    return a / _row_divisor(a, mask3, eps)


@triton.jit
def _column_normalized(a, mask3, eps):
    return a / _column_divisor(a, mask3, eps)


@triton.jit
def _mhc_sinkhorn_forward_kernel(
    MIX,
    B,
    ALPHA_PRE,
    ALPHA_POST,
    ALPHA_RES,
    H_PRE,
    H_POST,
    H_RES,
    n_tokens,
    pre_eps,
    sinkhorn_eps,
    post_mult,
    TMAX: tl.constexpr,
    HC: tl.constexpr,
    HC_BLOCK: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    M: tl.constexpr = HC * HC + 2 * HC
    pid = tl.program_id(0)
    alpha_pre = tl.load(ALPHA_PRE).to(tl.float32)
    alpha_post = tl.load(ALPHA_POST).to(tl.float32)
    alpha_res = tl.load(ALPHA_RES).to(tl.float32)
    lanes = tl.arange(0, HC_BLOCK)
    lane_mask = lanes < HC
    b_pre = tl.load(B + lanes, mask=lane_mask, other=0.0).to(tl.float32)
    b_post = tl.load(B + HC + lanes, mask=lane_mask, other=0.0).to(tl.float32)
    square = lanes[:, None] * HC + lanes[None, :]
    square_mask = lane_mask[:, None] & lane_mask[None, :]
    b_res = tl.load(B + 2 * HC + square, mask=square_mask, other=0.0).to(tl.float32)
    for tile in tl.range(pid, tl.cdiv(n_tokens, BLOCK_T), tl.num_programs(0)):
        tokens = (tile * BLOCK_T + tl.arange(0, BLOCK_T)).to(tl.int64)
        token_mask = tokens < n_tokens
        vec_mask = token_mask[:, None] & lane_mask[None, :]
        row = MIX + tokens[:, None] * M
        mix_pre = tl.load(row + lanes[None, :], mask=vec_mask, other=0.0)
        mix_post = tl.load(row + HC + lanes[None, :], mask=vec_mask, other=0.0)
        h_pre = tl.sigmoid(mix_pre * alpha_pre + b_pre[None, :]) + pre_eps
        h_post = tl.sigmoid(mix_post * alpha_post + b_post[None, :]) * post_mult
        tl.store(H_PRE + tokens[:, None] * HC + lanes[None, :], h_pre, mask=vec_mask)
        tl.store(H_POST + tokens[:, None] * HC + lanes[None, :], h_post, mask=vec_mask)
        mask3 = token_mask[:, None, None] & square_mask[None, :, :]
        a = _sinkhorn_start(MIX, tokens, token_mask, square, square_mask, alpha_res, b_res, sinkhorn_eps, HC)
        for _ in tl.range(1, TMAX):
            a = _column_normalized(_row_normalized(a, mask3, sinkhorn_eps), mask3, sinkhorn_eps)
        tl.store(H_RES + tokens[:, None, None] * (HC * HC) + square[None, :, :], a, mask=mask3)


@triton.jit
def _softmax_rows(MIX, tokens, token_mask, square, square_mask, alpha_res, b_res, HC: tl.constexpr):
    """(p, mask3): the row softmax of the residual logits of ``tokens``, 0 on padded lanes."""
    M: tl.constexpr = HC * HC + 2 * HC
    mask3 = token_mask[:, None, None] & square_mask[None, :, :]
    mix_res = tl.load(MIX + tokens[:, None, None] * M + 2 * HC + square[None, :, :], mask=mask3, other=0.0)
    logits = tl.where(mask3, mix_res * alpha_res + b_res[None, :, :], float("-inf"))
    row_max = tl.max(logits, axis=2)
    row_max = tl.where(row_max == float("-inf"), 0.0, row_max)
    e = tl.where(mask3, tl.exp(logits - row_max[:, :, None]), 0.0)
    row_sum = tl.sum(e, axis=2)
    p = e / tl.where(row_sum == 0.0, 1.0, row_sum)[:, :, None]
    return p, mask3


@triton.jit
def _sinkhorn_start(MIX, tokens, token_mask, square, square_mask, alpha_res, b_res, eps, HC: tl.constexpr):
    p, mask3 = _softmax_rows(MIX, tokens, token_mask, square, square_mask, alpha_res, b_res, HC)
    return _column_normalized(tl.where(mask3, p + eps, 0.0), mask3, eps)


@triton.jit
def _column_normalized_backward(a, out, grad, mask3, eps):
    grad = (grad - tl.sum(grad * out, axis=1)[:, None, :]) / _column_divisor(a, mask3, eps)
    return tl.where(mask3, grad, 0.0)


@triton.jit
def _row_normalized_backward(a, out, grad, mask3, eps):
    grad = (grad - tl.sum(grad * out, axis=2)[:, :, None]) / _row_divisor(a, mask3, eps)
    return tl.where(mask3, grad, 0.0)


@triton.jit
def _mhc_coeffs_backward_kernel(
    MIX,
    B,
    ALPHA_PRE,
    ALPHA_POST,
    ALPHA_RES,
    GRAD_PRE,
    GRAD_POST,
    GRAD_RES,
    GRAD_MIX,
    GRAD_B_PARTIAL,
    GRAD_ALPHA_PARTIAL,
    SCRATCH,
    n_tokens,
    sinkhorn_eps,
    post_mult,
    HAS_PRE: tl.constexpr,
    HAS_POST: tl.constexpr,
    HAS_RES: tl.constexpr,
    TMAX: tl.constexpr,
    HC: tl.constexpr,
    HC_BLOCK: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    M: tl.constexpr = HC * HC + 2 * HC
    pid = tl.program_id(0)
    alpha_pre = tl.load(ALPHA_PRE).to(tl.float32)
    alpha_post = tl.load(ALPHA_POST).to(tl.float32)
    alpha_res = tl.load(ALPHA_RES).to(tl.float32)
    lanes = tl.arange(0, HC_BLOCK)
    lane_mask = lanes < HC
    square = lanes[:, None] * HC + lanes[None, :]
    square_mask = lane_mask[:, None] & lane_mask[None, :]
    b_pre = tl.load(B + lanes, mask=lane_mask, other=0.0).to(tl.float32)
    b_post = tl.load(B + HC + lanes, mask=lane_mask, other=0.0).to(tl.float32)
    b_res = tl.load(B + 2 * HC + square, mask=square_mask, other=0.0).to(tl.float32)
    t_lanes = tl.arange(0, BLOCK_T)
    # this program's scratch: TMAX matrices of (BLOCK_T, HC_BLOCK, HC_BLOCK)
    step = BLOCK_T * HC_BLOCK * HC_BLOCK
    scratch = SCRATCH + pid.to(tl.int64) * (TMAX * step)
    local = t_lanes[:, None, None] * (HC_BLOCK * HC_BLOCK) + (lanes[:, None] * HC_BLOCK + lanes[None, :])[None, :, :]
    gb_pre = tl.zeros((HC_BLOCK,), dtype=tl.float32)
    gb_post = tl.zeros((HC_BLOCK,), dtype=tl.float32)
    gb_res = tl.zeros((HC_BLOCK, HC_BLOCK), dtype=tl.float32)
    ga_pre = tl.zeros((BLOCK_T,), dtype=tl.float32)
    ga_post = tl.zeros((BLOCK_T,), dtype=tl.float32)
    ga_res = tl.zeros((BLOCK_T,), dtype=tl.float32)
    for tile in tl.range(pid, tl.cdiv(n_tokens, BLOCK_T), tl.num_programs(0)):
        tokens = (tile * BLOCK_T + t_lanes).to(tl.int64)
        token_mask = tokens < n_tokens
        vec_mask = token_mask[:, None] & lane_mask[None, :]
        row = MIX + tokens[:, None] * M
        out_row = GRAD_MIX + tokens[:, None] * M
        if HAS_PRE:
            mix_pre = tl.load(row + lanes[None, :], mask=vec_mask, other=0.0)
            s = tl.sigmoid(mix_pre * alpha_pre + b_pre[None, :])
            g = tl.load(GRAD_PRE + tokens[:, None] * HC + lanes[None, :], mask=vec_mask, other=0.0).to(tl.float32)
            gl = g * s * (1.0 - s)
            gb_pre += tl.sum(gl, axis=0)
            ga_pre += tl.sum(gl * mix_pre, axis=1)
            tl.store(out_row + lanes[None, :], gl * alpha_pre, mask=vec_mask)
        else:
            tl.store(out_row + lanes[None, :], tl.zeros((BLOCK_T, HC_BLOCK), dtype=tl.float32), mask=vec_mask)
        if HAS_POST:
            mix_post = tl.load(row + HC + lanes[None, :], mask=vec_mask, other=0.0)
            s = tl.sigmoid(mix_post * alpha_post + b_post[None, :])
            g = tl.load(GRAD_POST + tokens[:, None] * HC + lanes[None, :], mask=vec_mask, other=0.0).to(tl.float32)
            gl = g * s * (1.0 - s) * post_mult
            gb_post += tl.sum(gl, axis=0)
            ga_post += tl.sum(gl * mix_post, axis=1)
            tl.store(out_row + HC + lanes[None, :], gl * alpha_post, mask=vec_mask)
        else:
            tl.store(out_row + HC + lanes[None, :], tl.zeros((BLOCK_T, HC_BLOCK), dtype=tl.float32), mask=vec_mask)
        mask3 = token_mask[:, None, None] & square_mask[None, :, :]
        res_out = GRAD_MIX + tokens[:, None, None] * M + 2 * HC + square[None, :, :]
        if HAS_RES:
            # the forward's iterations again, each matrix kept in this program's scratch
            a = _sinkhorn_start(MIX, tokens, token_mask, square, square_mask, alpha_res, b_res, sinkhorn_eps, HC)
            tl.store(scratch + local, a)
            for t in tl.range(1, TMAX):
                a = _column_normalized(_row_normalized(a, mask3, sinkhorn_eps), mask3, sinkhorn_eps)
                tl.store(scratch + t * step + local, a)
            tl.debug_barrier()
            grad = tl.load(GRAD_RES + tokens[:, None, None] * (HC * HC) + square[None, :, :], mask=mask3, other=0.0)
            grad = grad.to(tl.float32)
            for r in tl.range(1, TMAX):
                t = TMAX - r
                before = tl.load(scratch + (t - 1) * step + local)
                after = tl.load(scratch + t * step + local)
                rows_normalized = _row_normalized(before, mask3, sinkhorn_eps)
                grad = _column_normalized_backward(rows_normalized, after, grad, mask3, sinkhorn_eps)
                grad = _row_normalized_backward(before, rows_normalized, grad, mask3, sinkhorn_eps)
            p, _ = _softmax_rows(MIX, tokens, token_mask, square, square_mask, alpha_res, b_res, HC)
            first = tl.load(scratch + local)
            grad = _column_normalized_backward(tl.where(mask3, p + sinkhorn_eps, 0.0), first, grad, mask3, sinkhorn_eps)
            gl = tl.where(mask3, p * (grad - tl.sum(grad * p, axis=2)[:, :, None]), 0.0)
            mix_res = tl.load(MIX + tokens[:, None, None] * M + 2 * HC + square[None, :, :], mask=mask3, other=0.0)
            gb_res += tl.sum(gl, axis=0)
            ga_res += tl.sum(tl.sum(gl * mix_res, axis=2), axis=1)
            tl.store(res_out, gl * alpha_res, mask=mask3)
            tl.debug_barrier()
        else:
            tl.store(res_out, tl.zeros((BLOCK_T, HC_BLOCK, HC_BLOCK), dtype=tl.float32), mask=mask3)
    partial = GRAD_B_PARTIAL + pid.to(tl.int64) * M
    tl.store(partial + lanes, gb_pre, mask=lane_mask)
    tl.store(partial + HC + lanes, gb_post, mask=lane_mask)
    tl.store(partial + 2 * HC + square, gb_res, mask=square_mask)
    tl.store(GRAD_ALPHA_PARTIAL + pid * 3, tl.sum(ga_pre, axis=0))
    tl.store(GRAD_ALPHA_PARTIAL + pid * 3 + 1, tl.sum(ga_post, axis=0))
    tl.store(GRAD_ALPHA_PARTIAL + pid * 3 + 2, tl.sum(ga_res, axis=0))


# -----------------------------------------------------------------------------------------------
# pre-aggregation and post/residual mix
# -----------------------------------------------------------------------------------------------


@triton.jit
def _mhc_pre_forward_kernel(X, H_PRE, OUT, n_tokens, C, HC: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0)
    for tile in tl.range(pid, tl.cdiv(n_tokens, BLOCK_T), tl.num_programs(0)):
        tokens = (tile * BLOCK_T + tl.arange(0, BLOCK_T)).to(tl.int64)
        token_mask = tokens < n_tokens
        for c0 in tl.range(0, C, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            mask = token_mask[:, None] & (cols < C)[None, :]
            acc = tl.zeros((BLOCK_T, BLOCK_C), dtype=tl.float32)
            for i in tl.static_range(HC):
                h = tl.load(H_PRE + tokens * HC + i, mask=token_mask, other=0.0).to(tl.float32)
                x = tl.load(X + (tokens[:, None] * HC + i) * C + cols[None, :], mask=mask, other=0.0)
                acc += h[:, None] * x.to(tl.float32)
            tl.store(OUT + tokens[:, None] * C + cols[None, :], acc.to(OUT.dtype.element_ty), mask=mask)


@triton.jit
def _mhc_pre_backward_kernel(
    X,
    H_PRE,
    GRAD,
    DX,
    DH,
    n_tokens,
    C,
    HC: tl.constexpr,
    HC_BLOCK: tl.constexpr,
    COMPUTE_DX: tl.constexpr,
    COMPUTE_DH: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    pid = tl.program_id(0)
    lanes = tl.arange(0, HC_BLOCK)
    for tile in tl.range(pid, tl.cdiv(n_tokens, BLOCK_T), tl.num_programs(0)):
        tokens = (tile * BLOCK_T + tl.arange(0, BLOCK_T)).to(tl.int64)
        token_mask = tokens < n_tokens
        dh = tl.zeros((BLOCK_T, HC_BLOCK), dtype=tl.float32)
        for c0 in tl.range(0, C, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            mask = token_mask[:, None] & (cols < C)[None, :]
            g = tl.load(GRAD + tokens[:, None] * C + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            for i in tl.static_range(HC):
                offsets = (tokens[:, None] * HC + i) * C + cols[None, :]
                if COMPUTE_DX:
                    h = tl.load(H_PRE + tokens * HC + i, mask=token_mask, other=0.0).to(tl.float32)
                    tl.store(DX + offsets, (h[:, None] * g).to(DX.dtype.element_ty), mask=mask)
                if COMPUTE_DH:
                    x = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32)
                    dh += tl.where(lanes[None, :] == i, tl.sum(g * x, axis=1)[:, None], 0.0)
        if COMPUTE_DH:
            tl.store(
                DH + tokens[:, None] * HC + lanes[None, :],
                dh.to(DH.dtype.element_ty),
                mask=token_mask[:, None] & (lanes < HC)[None, :],
            )


@triton.jit
def _mhc_post_res_forward_kernel(
    X,
    F,
    H_POST,
    H_RES,
    OUT,
    n_tokens,
    C,
    HC: tl.constexpr,
    HC_BLOCK: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    pid = tl.program_id(0)
    lanes = tl.arange(0, HC_BLOCK)
    lane_mask = lanes < HC
    for tile in tl.range(pid, tl.cdiv(n_tokens, BLOCK_T), tl.num_programs(0)):
        tokens = (tile * BLOCK_T + tl.arange(0, BLOCK_T)).to(tl.int64)
        token_mask = tokens < n_tokens
        vec_mask = token_mask[:, None] & lane_mask[None, :]
        h_post = tl.load(H_POST + tokens[:, None] * HC + lanes[None, :], mask=vec_mask, other=0.0).to(tl.float32)
        for c0 in tl.range(0, C, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            mask = token_mask[:, None] & (cols < C)[None, :]
            f = tl.load(F + tokens[:, None] * C + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            acc = h_post[:, :, None] * f[:, None, :]
            for i in tl.static_range(HC):
                # column i of h_res: the weight of input stream i in every output stream
                w = tl.load(H_RES + tokens[:, None] * (HC * HC) + lanes[None, :] * HC + i, mask=vec_mask, other=0.0)
                x = tl.load(X + (tokens[:, None] * HC + i) * C + cols[None, :], mask=mask, other=0.0)
                acc += w.to(tl.float32)[:, :, None] * x.to(tl.float32)[:, None, :]
            out = OUT + (tokens[:, None, None] * HC + lanes[None, :, None]) * C + cols[None, None, :]
            tl.store(out, acc.to(OUT.dtype.element_ty), mask=vec_mask[:, :, None] & mask[:, None, :])


@triton.jit
def _mhc_post_res_backward_kernel(
    X,
    F,
    H_POST,
    H_RES,
    GRAD,
    DX,
    DF,
    DH_POST,
    DH_RES,
    n_tokens,
    C,
    HC: tl.constexpr,
    HC_BLOCK: tl.constexpr,
    COMPUTE_DX: tl.constexpr,
    COMPUTE_DF: tl.constexpr,
    COMPUTE_DH_POST: tl.constexpr,
    COMPUTE_DH_RES: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    pid = tl.program_id(0)
    lanes = tl.arange(0, HC_BLOCK)
    lane_mask = lanes < HC
    for tile in tl.range(pid, tl.cdiv(n_tokens, BLOCK_T), tl.num_programs(0)):
        tokens = (tile * BLOCK_T + tl.arange(0, BLOCK_T)).to(tl.int64)
        token_mask = tokens < n_tokens
        vec_mask = token_mask[:, None] & lane_mask[None, :]
        h_post = tl.load(H_POST + tokens[:, None] * HC + lanes[None, :], mask=vec_mask, other=0.0).to(tl.float32)
        dh_post = tl.zeros((BLOCK_T, HC_BLOCK), dtype=tl.float32)
        dh_res = tl.zeros((BLOCK_T, HC_BLOCK, HC_BLOCK), dtype=tl.float32)
        for c0 in tl.range(0, C, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            mask = token_mask[:, None] & (cols < C)[None, :]
            mask3 = vec_mask[:, :, None] & mask[:, None, :]
            grad_rows = (tokens[:, None, None] * HC + lanes[None, :, None]) * C + cols[None, None, :]
            g = tl.load(GRAD + grad_rows, mask=mask3, other=0.0).to(tl.float32)
            if COMPUTE_DF:
                df = tl.sum(h_post[:, :, None] * g, axis=1)
                tl.store(DF + tokens[:, None] * C + cols[None, :], df.to(DF.dtype.element_ty), mask=mask)
            if COMPUTE_DH_POST:
                f = tl.load(F + tokens[:, None] * C + cols[None, :], mask=mask, other=0.0).to(tl.float32)
                dh_post += tl.sum(g * f[:, None, :], axis=2)
            for i in tl.static_range(HC):
                offsets = (tokens[:, None] * HC + i) * C + cols[None, :]
                if COMPUTE_DX:
                    w = tl.load(H_RES + tokens[:, None] * (HC * HC) + lanes[None, :] * HC + i, mask=vec_mask, other=0.0)
                    dx = tl.sum(w.to(tl.float32)[:, :, None] * g, axis=1)
                    tl.store(DX + offsets, dx.to(DX.dtype.element_ty), mask=mask)
                if COMPUTE_DH_RES:
                    x = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32)
                    column = tl.sum(g * x[:, None, :], axis=2)
                    dh_res += tl.where(lanes[None, None, :] == i, column[:, :, None], 0.0)
        if COMPUTE_DH_POST:
            tl.store(
                DH_POST + tokens[:, None] * HC + lanes[None, :], dh_post.to(DH_POST.dtype.element_ty), mask=vec_mask
            )
        if COMPUTE_DH_RES:
            square = lanes[:, None] * HC + lanes[None, :]
            out = DH_RES + tokens[:, None, None] * (HC * HC) + square[None, :, :]
            square_mask = lane_mask[:, None] & lane_mask[None, :]
            mask_res = token_mask[:, None, None] & square_mask[None, :, :]
            tl.store(out, dh_res.to(DH_RES.dtype.element_ty), mask=mask_res)


# -----------------------------------------------------------------------------------------------
# launch plans
# -----------------------------------------------------------------------------------------------

#: float32 values of a (BLOCK_T, HC, BLOCK_C) tile of the apply kernels (the post/residual
#: backward holds about three such tiles live: the gradient, a product and the streams)
APPLY_TILE = 4096
#: elements of a (BLOCK_T, HC, HC) Sinkhorn tile: the backward keeps about nine such tiles
#: alive (the iterates, the gradient, the softmax), 36 KiB at this size
SINKHORN_TILE = 1024
#: rows of x per matmul tile, and its K step
MM_ROWS = 32
MM_K = 64


def _pow2(n: int, floor: int = 1) -> int:
    return max(floor, triton.next_power_of_2(max(1, n)))


def apply_blocks(profile: DeviceProfile, n_tokens: int, hc: int, c: int) -> tuple[int, int]:
    """(BLOCK_T, BLOCK_C) of the pre and post/residual kernels: the row as wide as
    fits the tile, then as many tokens as still fit (their HC-wide tiles counted)."""
    budget = max(MIN_BLOCK, min(APPLY_TILE, profile.max_block // 8))
    streams = _pow2(hc)
    block_c = max(MIN_BLOCK, min(_pow2(c, MIN_BLOCK), budget // streams))
    block_t = 1
    while block_t * 2 * streams * block_c <= budget and block_t < n_tokens:
        block_t *= 2
    return block_t, block_c


def sinkhorn_tokens(hc_block: int) -> int:
    """BLOCK_T of the Sinkhorn kernels: 16 tokens, fewer where HC is wide."""
    return max(1, min(16, SINKHORN_TILE // (hc_block * hc_block)))


def mm_blocks(m: int, whole_m: bool = False) -> tuple[int, int, int]:
    """(BLOCK_N, BLOCK_K, BLOCK_M) of the matmul kernels (dot tiles are at least 16 wide).
    The forward walks M in blocks of at most 128; the backward (``whole_m``) needs every
    column of a row at once (the RMS term sums over M), with the smallest dot tiles when
    that block is wide (HC > 8: 16 x 16 steps, about 128 KiB of values alive at HC = 12)."""
    if not whole_m:
        return MM_ROWS, MM_K, min(_pow2(m, 16), 128)
    block_m = _pow2(m, 16)
    return (MM_ROWS, MM_K, block_m) if block_m <= 128 else (16, 16, block_m)


def _precise(*tensors: torch.Tensor) -> bool:
    return any(t.dtype == torch.float32 for t in tensors)


def _num_warps(profile: DeviceProfile, elements: int) -> int:
    return min(8, profile.num_warps(elements))


def coefficients_forward(
    x_mat: torch.Tensor,
    phi: torch.Tensor,
    b: torch.Tensor,
    alphas: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    tmax: int,
    rms_eps: float,
    pre_eps: float,
    sinkhorn_eps: float,
    post_mult: float,
) -> tuple[torch.Tensor, ...]:
    """(h_pre, h_post, h_res, mix, invr) for tokens x_mat (N, HC*C)."""
    n, k = x_mat.shape
    m = phi.shape[1]
    hc = streams_of(m)
    device = x_mat.device
    mix = torch.empty((n, m), dtype=torch.float32, device=device)
    invr = torch.empty((n,), dtype=torch.float32, device=device)
    h_pre = torch.empty((n, hc), dtype=torch.float32, device=device)
    h_post = torch.empty((n, hc), dtype=torch.float32, device=device)
    h_res = torch.empty((n, hc, hc), dtype=torch.float32, device=device)
    if n == 0:
        return h_pre, h_post, h_res, mix, invr
    profile = device_profile(device)
    block_n, block_k, block_m = mm_blocks(m)
    tiles = triton.cdiv(n, block_n) * triton.cdiv(m, block_m)
    upcast = not (x_mat.dtype == phi.dtype and x_mat.dtype in (torch.float16, torch.bfloat16))
    launch(
        profile,
        _mhc_mm_norm_forward_kernel,
        profile.grid(tiles),
        x_mat,
        phi,
        mix,
        invr,
        n,
        k,
        m,
        rms_eps,
        UPCAST=upcast,
        PRECISE=_precise(x_mat, phi),
        BLOCK_N=block_n,
        BLOCK_K=block_k,
        BLOCK_M=block_m,
        num_warps=4,
    )
    hc_block = _pow2(hc)
    block_t = sinkhorn_tokens(hc_block)
    launch(
        profile,
        _mhc_sinkhorn_forward_kernel,
        profile.grid(triton.cdiv(n, block_t)),
        mix,
        b,
        *alphas,
        h_pre,
        h_post,
        h_res,
        n,
        pre_eps,
        sinkhorn_eps,
        post_mult,
        TMAX=tmax,
        HC=hc,
        HC_BLOCK=hc_block,
        BLOCK_T=block_t,
        num_warps=_num_warps(profile, block_t * hc_block * hc_block),
    )
    return h_pre, h_post, h_res, mix, invr


def coefficients_backward(
    x_mat: torch.Tensor,
    phi: torch.Tensor,
    b: torch.Tensor,
    alphas: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    mix: torch.Tensor,
    invr: torch.Tensor,
    grads: tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None],
    needs: tuple[bool, ...],
    tmax: int,
    sinkhorn_eps: float,
    post_mult: float,
) -> tuple[Any, ...]:
    """Gradients of (x_mat, phi, b, alpha_pre, alpha_post, alpha_res), float32 (None where not needed)."""
    n, k = x_mat.shape
    m = phi.shape[1]
    hc = streams_of(m)
    device = x_mat.device
    profile = device_profile(device)
    hc_block = _pow2(hc)
    block_t = sinkhorn_tokens(hc_block)
    grid = max(1, profile.grid(triton.cdiv(n, block_t)))
    grad_mix = torch.empty((n, m), dtype=torch.float32, device=device)
    grad_b_partial = torch.empty((grid, m), dtype=torch.float32, device=device)
    grad_alpha_partial = torch.empty((grid, 3), dtype=torch.float32, device=device)
    scratch = torch.empty(
        (grid * tmax * block_t * hc_block * hc_block if grads[2] is not None else 1,),
        dtype=torch.float32,
        device=device,
    )
    contiguous = [g.contiguous() if g is not None else None for g in grads]
    launch(
        profile,
        _mhc_coeffs_backward_kernel,
        grid,
        mix,
        b,
        *alphas,
        *(g if g is not None else mix for g in contiguous),
        grad_mix,
        grad_b_partial,
        grad_alpha_partial,
        scratch,
        n,
        sinkhorn_eps,
        post_mult,
        HAS_PRE=grads[0] is not None,
        HAS_POST=grads[1] is not None,
        HAS_RES=grads[2] is not None,
        TMAX=tmax,
        HC=hc,
        HC_BLOCK=hc_block,
        BLOCK_T=block_t,
        num_warps=_num_warps(profile, block_t * hc_block * hc_block),
    )
    needs_x, needs_phi = needs[0], needs[1]
    dx = torch.empty_like(x_mat) if needs_x else None
    dphi = None
    if (needs_x or needs_phi) and n:
        block_n, block_k, block_m = mm_blocks(m, whole_m=True)
        if profile.warp_size == 64 and block_m >= 128:
            # four 64-lane wavefronts hold the (32, 128) and (64, 128) fp32 blocks of a
            # 128-wide row in one wave per SIMD (gfx942, gfx950); 16 x 16 steps leave room for two
            block_n, block_k = 16, 16
        k_blocks = triton.cdiv(k, block_k)
        token_blocks = triton.cdiv(n, block_n)
        shares = max(1, min(token_blocks, -(-profile.grid(k_blocks * token_blocks) // k_blocks)))
        per_share = triton.cdiv(token_blocks, shares)
        shares = triton.cdiv(token_blocks, per_share)
        dphi_partial = torch.empty((shares, k, m) if needs_phi else (1,), dtype=torch.float32, device=device)
        launch(
            profile,
            _mhc_mm_norm_backward_kernel,
            shares * k_blocks,
            x_mat,
            phi,
            mix,
            invr,
            grad_mix,
            dx if dx is not None else x_mat,
            dphi_partial,
            n,
            k,
            m,
            per_share,
            COMPUTE_DX=needs_x,
            COMPUTE_DPHI=needs_phi,
            PRECISE=_precise(x_mat, phi),
            BLOCK_N=block_n,
            BLOCK_K=block_k,
            BLOCK_M=block_m,
            num_warps=4,
        )
        dphi = dphi_partial.sum(0) if needs_phi else None
    elif needs_phi:
        dphi = torch.zeros((k, m), dtype=torch.float32, device=device)
    grad_alpha = grad_alpha_partial.sum(0)
    return dx, dphi, grad_b_partial.sum(0), grad_alpha[0], grad_alpha[1], grad_alpha[2]


class MHCCoeffsFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        phi: torch.Tensor,
        b: torch.Tensor,
        alpha_pre: torch.Tensor,
        alpha_post: torch.Tensor,
        alpha_res: torch.Tensor,
        allow_fp32: bool,
        tmax: int,
        rms_eps: float,
        pre_eps: float,
        sinkhorn_eps: float,
        post_mult: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hc, c = x.shape[-2:]
        outer = x.shape[:-2]
        x_mat = x.reshape(-1, hc * c).contiguous()
        phi_c, b_c = phi.contiguous(), b.contiguous()
        alphas = (alpha_pre, alpha_post, alpha_res)
        h_pre, h_post, h_res, mix, invr = coefficients_forward(
            x_mat, phi_c, b_c, alphas, tmax, rms_eps, pre_eps, sinkhorn_eps, post_mult
        )
        ctx.save_for_backward(x_mat, phi_c, b_c, alpha_pre, alpha_post, alpha_res, mix, invr)
        ctx.options = (tmax, sinkhorn_eps, post_mult)
        ctx.shapes = (x.shape, phi.dtype, b.dtype)
        return h_pre.view(*outer, hc), h_post.view(*outer, hc), h_res.view(*outer, hc, hc)

    @staticmethod
    def backward(ctx: Any, grad_pre: Any, grad_post: Any, grad_res: Any) -> tuple[Any, ...]:
        x_mat, phi, b, alpha_pre, alpha_post, alpha_res, mix, invr = ctx.saved_tensors
        tmax, sinkhorn_eps, post_mult = ctx.options
        x_shape, _, _ = ctx.shapes
        hc = x_shape[-2]
        grads = (
            grad_pre.reshape(-1, hc) if grad_pre is not None else None,
            grad_post.reshape(-1, hc) if grad_post is not None else None,
            grad_res.reshape(-1, hc, hc) if grad_res is not None else None,
        )
        alphas = (alpha_pre, alpha_post, alpha_res)
        dx, dphi, db, *dalphas = coefficients_backward(
            x_mat, phi, b, alphas, mix, invr, grads, ctx.needs_input_grad[:2], tmax, sinkhorn_eps, post_mult
        )
        return (
            dx.view(x_shape) if dx is not None else None,
            dphi.to(phi.dtype) if dphi is not None else None,
            db.to(b.dtype),
            *(g.reshape(a.shape).to(a.dtype) for g, a in zip(dalphas, alphas)),
            None,
            None,
            None,
            None,
            None,
            None,
        )


def _tokens(t: torch.Tensor, *trailing: int) -> torch.Tensor:
    return t.reshape(-1, *trailing).contiguous()


class MHCPreFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, h_pre: torch.Tensor) -> torch.Tensor:
        hc, c = x.shape[-2:]
        x3, h = _tokens(x, hc, c), _tokens(h_pre, hc)
        n = x3.shape[0]
        out = torch.empty((n, c), dtype=x.dtype, device=x.device)
        if n:
            profile = device_profile(x.device)
            block_t, block_c = apply_blocks(profile, n, hc, c)
            launch(
                profile,
                _mhc_pre_forward_kernel,
                profile.grid(triton.cdiv(n, block_t)),
                x3,
                h,
                out,
                n,
                c,
                HC=hc,
                BLOCK_T=block_t,
                BLOCK_C=block_c,
                num_warps=_num_warps(profile, block_t * block_c),
            )
        ctx.save_for_backward(x3, h)
        ctx.shapes = (x.shape, h_pre.shape)
        return out.view(*x.shape[:-2], c)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x3, h = ctx.saved_tensors
        x_shape, h_shape = ctx.shapes
        n, hc, c = x3.shape
        needs_dx, needs_dh = ctx.needs_input_grad[:2]
        dx = torch.empty_like(x3) if needs_dx else None
        dh = torch.empty_like(h) if needs_dh else None
        if n and (needs_dx or needs_dh):
            profile = device_profile(x3.device)
            block_t, block_c = apply_blocks(profile, n, hc, c)
            launch(
                profile,
                _mhc_pre_backward_kernel,
                profile.grid(triton.cdiv(n, block_t)),
                x3,
                h,
                _tokens(grad, c),
                dx if dx is not None else x3,
                dh if dh is not None else h,
                n,
                c,
                HC=hc,
                HC_BLOCK=_pow2(hc),
                COMPUTE_DX=needs_dx,
                COMPUTE_DH=needs_dh,
                BLOCK_T=block_t,
                BLOCK_C=block_c,
                num_warps=_num_warps(profile, block_t * block_c),
            )
        return (dx.view(x_shape) if dx is not None else None, dh.view(h_shape) if dh is not None else None)


class MHCPostResFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, f_out: torch.Tensor, h_post: torch.Tensor, h_res: torch.Tensor
    ) -> torch.Tensor:
        hc, c = x.shape[-2:]
        x3, f, hp, hr = _tokens(x, hc, c), _tokens(f_out, c), _tokens(h_post, hc), _tokens(h_res, hc, hc)
        n = x3.shape[0]
        out = torch.empty((n, hc, c), dtype=x.dtype, device=x.device)
        if n:
            profile = device_profile(x.device)
            block_t, block_c = apply_blocks(profile, n, hc, c)
            hc_block = _pow2(hc)
            launch(
                profile,
                _mhc_post_res_forward_kernel,
                profile.grid(triton.cdiv(n, block_t)),
                x3,
                f,
                hp,
                hr,
                out,
                n,
                c,
                HC=hc,
                HC_BLOCK=hc_block,
                BLOCK_T=block_t,
                BLOCK_C=block_c,
                num_warps=_num_warps(profile, block_t * block_c * hc_block),
            )
        ctx.save_for_backward(x3, f, hp, hr)
        ctx.shapes = (x.shape, f_out.shape, h_post.shape, h_res.shape)
        return out.view(x.shape)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x3, f, hp, hr = ctx.saved_tensors
        n, hc, c = x3.shape
        needs = ctx.needs_input_grad[:4]
        outs = [torch.empty_like(t) if need else None for t, need in zip((x3, f, hp, hr), needs)]
        if n and any(needs):
            profile = device_profile(x3.device)
            block_t, block_c = apply_blocks(profile, n, hc, c)
            hc_block = _pow2(hc)
            launch(
                profile,
                _mhc_post_res_backward_kernel,
                profile.grid(triton.cdiv(n, block_t)),
                x3,
                f,
                hp,
                hr,
                _tokens(grad, hc, c),
                *(o if o is not None else t for o, t in zip(outs, (x3, f, hp, hr))),
                n,
                c,
                HC=hc,
                HC_BLOCK=hc_block,
                COMPUTE_DX=needs[0],
                COMPUTE_DF=needs[1],
                COMPUTE_DH_POST=needs[2],
                COMPUTE_DH_RES=needs[3],
                BLOCK_T=block_t,
                BLOCK_C=block_c,
                num_warps=_num_warps(profile, block_t * block_c * hc_block),
            )
        return tuple(o.view(s) if o is not None else None for o, s in zip(outs, ctx.shapes))
