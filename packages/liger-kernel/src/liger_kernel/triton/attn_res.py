"""Attention residuals, portable Triton kernels (math: :mod:`liger_kernel.ops.attn_res`).

Layout: V as (N, tokens, D). A program of the persistent grid takes one token
at a time and all N blocks of it as one (N_BLOCK, BLOCK_D) tile, N padded to
a power of two with masked blocks kept out of the softmax. When D fits one
tile (``ONE_TILE``) the token's blocks are read once: sums of squares, query
dots, softmax and the weighted sum all come from the registers. A wider D
is walked twice, the statistics first and then the weighted sum.

Nothing but the inputs is kept for the backward: it recomputes rstd, the
scores and the weights in its first pass (together with <dh, v_i>), then
writes dV in a second; each program adds its tokens' share of the
query/norm gradient u into its own row of a partial buffer (registers when
D is one tile), and the rows are summed afterwards in a fixed order.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.triton.launch import MIN_BLOCK, launch

#: elements of one (N_BLOCK, BLOCK_D) tile
TILE_ELEMENTS = 8192


@triton.jit
def _statistics(
    V, G, token, n_blocks, n_tokens, D, u_ptr, HAS_GRAD: tl.constexpr, N_BLOCK: tl.constexpr, BLOCK_D: tl.constexpr
):
    """Per block of ``token``: (sum of squares, <u, v_i>, <g, v_i>), over D in BLOCK_D steps."""
    blocks = tl.arange(0, N_BLOCK)
    block_mask = blocks < n_blocks
    base = (blocks.to(tl.int64) * n_tokens + token) * D
    sumsq = tl.zeros((N_BLOCK,), dtype=tl.float32)
    udot = tl.zeros((N_BLOCK,), dtype=tl.float32)
    gdot = tl.zeros((N_BLOCK,), dtype=tl.float32)
    for d0 in tl.range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        col_mask = cols < D
        mask = block_mask[:, None] & col_mask[None, :]
        v = tl.load(V + base[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        u = tl.load(u_ptr + cols, mask=col_mask, other=0.0)
        sumsq += tl.sum(v * v, axis=1)
        udot += tl.sum(v * u[None, :], axis=1)
        if HAS_GRAD:
            g = tl.load(G + token * D + cols, mask=col_mask, other=0.0).to(tl.float32)
            gdot += tl.sum(v * g[None, :], axis=1)
    return sumsq, udot, gdot


@triton.jit
def _weights(sumsq, udot, n_blocks, D, eps, N_BLOCK: tl.constexpr):
    """(a, rstd, scores) from the per-block sums; padded blocks weigh 0."""
    block_mask = tl.arange(0, N_BLOCK) < n_blocks
    rstd = 1.0 / tl.sqrt(sumsq / D + eps)
    scores = tl.where(block_mask, udot * rstd, float("-inf"))
    e = tl.where(block_mask, tl.exp(scores - tl.max(scores, axis=0)), 0.0)
    return e / tl.sum(e, axis=0), rstd, tl.where(block_mask, scores, 0.0)


@triton.jit
def _attn_res_forward_kernel(
    V,
    U,
    OUT,
    n_blocks,
    n_tokens,
    D,
    eps,
    ONE_TILE: tl.constexpr,
    N_BLOCK: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    blocks = tl.arange(0, N_BLOCK)
    block_mask = blocks < n_blocks
    for token in tl.range(pid, n_tokens, tl.num_programs(0)):
        token64 = token
        base = (blocks.to(tl.int64) * n_tokens + token64) * D
        if ONE_TILE:
            cols = tl.arange(0, BLOCK_D)
            col_mask = cols < D
            mask = block_mask[:, None] & col_mask[None, :]
            v = tl.load(V + base[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            u = tl.load(U + cols, mask=col_mask, other=0.0)
            a, _, _ = _weights(tl.sum(v * v, axis=1), tl.sum(v * u[None, :], axis=1), n_blocks, D, eps, N_BLOCK)
            h = tl.sum(a[:, None] * v, axis=0)
            tl.store(OUT + token64 * D + cols, h.to(OUT.dtype.element_ty), mask=col_mask)
        else:
            sumsq, udot, _ = _statistics(V, V, token64, n_blocks, n_tokens, D, U, False, N_BLOCK, BLOCK_D)
            a, _, _ = _weights(sumsq, udot, n_blocks, D, eps, N_BLOCK)
            for d0 in tl.range(0, D, BLOCK_D):
                cols = d0 + tl.arange(0, BLOCK_D)
                col_mask = cols < D
                mask = block_mask[:, None] & col_mask[None, :]
                v = tl.load(V + base[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32)
                h = tl.sum(a[:, None] * v, axis=0)
                tl.store(OUT + token64 * D + cols, h.to(OUT.dtype.element_ty), mask=col_mask)


@triton.jit
def _attn_res_backward_kernel(
    V,
    U,
    G,
    DV,
    DU_PARTIAL,
    n_blocks,
    n_tokens,
    D,
    eps,
    ONE_TILE: tl.constexpr,
    N_BLOCK: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    blocks = tl.arange(0, N_BLOCK)
    block_mask = blocks < n_blocks
    du_row = DU_PARTIAL + pid * D
    du = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for token in tl.range(pid, n_tokens, tl.num_programs(0)):
        token64 = token
        base = (blocks.to(tl.int64) * n_tokens + token64) * D
        if ONE_TILE:
            cols = tl.arange(0, BLOCK_D)
            col_mask = cols < D
            mask = block_mask[:, None] & col_mask[None, :]
            v = tl.load(V + base[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            u = tl.load(U + cols, mask=col_mask, other=0.0)
            g = tl.load(G + token64 * D + cols, mask=col_mask, other=0.0).to(tl.float32)
            a, rstd, scores = _weights(tl.sum(v * v, axis=1), tl.sum(v * u[None, :], axis=1), n_blocks, D, eps, N_BLOCK)
            da = tl.sum(v * g[None, :], axis=1)
            ds = a * (da - tl.sum(a * da, axis=0))
            dv = (
                a[:, None] * g[None, :]
                + (ds * rstd)[:, None] * u[None, :]
                - (ds * scores * rstd * rstd / D)[:, None] * v
            )
            tl.store(DV + base[:, None] + cols[None, :], dv.to(DV.dtype.element_ty), mask=mask)
            du += tl.sum((ds * rstd)[:, None] * v, axis=0)
        else:
            sumsq, udot, da = _statistics(V, G, token64, n_blocks, n_tokens, D, U, True, N_BLOCK, BLOCK_D)
            a, rstd, scores = _weights(sumsq, udot, n_blocks, D, eps, N_BLOCK)
            ds = a * (da - tl.sum(a * da, axis=0))
            for d0 in tl.range(0, D, BLOCK_D):
                cols = d0 + tl.arange(0, BLOCK_D)
                col_mask = cols < D
                mask = block_mask[:, None] & col_mask[None, :]
                v = tl.load(V + base[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32)
                u = tl.load(U + cols, mask=col_mask, other=0.0)
                g = tl.load(G + token64 * D + cols, mask=col_mask, other=0.0).to(tl.float32)
                dv = (
                    a[:, None] * g[None, :]
                    + (ds * rstd)[:, None] * u[None, :]
                    - (ds * scores * rstd * rstd / D)[:, None] * v
                )
                tl.store(DV + base[:, None] + cols[None, :], dv.to(DV.dtype.element_ty), mask=mask)
                # this program's own row: no other program reads or writes it
                share = tl.load(du_row + cols, mask=col_mask, other=0.0)
                tl.store(du_row + cols, share + tl.sum((ds * rstd)[:, None] * v, axis=0), mask=col_mask)
    if ONE_TILE:
        cols = tl.arange(0, BLOCK_D)
        tl.store(du_row + cols, du, mask=cols < D)


def blocks_for(n_blocks: int, d: int, max_block: int) -> tuple[int, int, bool]:
    """(N_BLOCK, BLOCK_D, ONE_TILE): the N blocks of a token as one tile, D as wide as fits."""
    n_block = triton.next_power_of_2(n_blocks)
    budget = max(MIN_BLOCK, min(TILE_ELEMENTS, max_block // 4) // n_block)
    block_d = MIN_BLOCK
    while block_d < d and block_d < budget:
        block_d *= 2
    return n_block, block_d, block_d >= d


class AttnResFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, V_stacked: torch.Tensor, w_query: torch.Tensor, w_norm: torch.Tensor, eps: float
    ) -> torch.Tensor:
        n, d = V_stacked.shape[0], V_stacked.shape[-1]
        v = V_stacked.reshape(n, -1, d).contiguous()
        tokens = v.shape[1]
        u = w_query.float() * w_norm.float()
        out = torch.empty((tokens, d), dtype=V_stacked.dtype, device=V_stacked.device)
        if tokens:
            profile = device_profile(v.device)
            n_block, block_d, one_tile = blocks_for(n, d, profile.max_block)
            launch(
                profile,
                _attn_res_forward_kernel,
                profile.grid(tokens),
                v,
                u,
                out,
                n,
                tokens,
                d,
                eps,
                ONE_TILE=one_tile,
                N_BLOCK=n_block,
                BLOCK_D=block_d,
                num_warps=min(8, profile.num_warps(n_block * block_d)),
            )
        ctx.save_for_backward(v, w_query, w_norm)
        ctx.eps, ctx.v_shape = eps, V_stacked.shape
        return out.view(V_stacked.shape[1:])

    @staticmethod
    def backward(ctx: Any, dh: torch.Tensor) -> tuple[Any, ...]:
        v, w_query, w_norm = ctx.saved_tensors
        n, tokens, d = v.shape
        wq, wn = w_query.float(), w_norm.float()
        dv = torch.empty_like(v)
        profile = device_profile(v.device)
        grid = profile.grid(tokens)
        n_block, block_d, one_tile = blocks_for(n, d, profile.max_block)
        # a wide D adds into its rows token after token, so they start at zero
        du_partial = (torch.empty if one_tile else torch.zeros)((grid, d), dtype=torch.float32, device=v.device)
        if tokens:
            launch(
                profile,
                _attn_res_backward_kernel,
                grid,
                v,
                wq * wn,
                dh.reshape(tokens, d).contiguous(),
                dv,
                du_partial,
                n,
                tokens,
                d,
                ctx.eps,
                ONE_TILE=one_tile,
                N_BLOCK=n_block,
                BLOCK_D=block_d,
                num_warps=min(8, profile.num_warps(n_block * block_d)),
            )
        else:
            du_partial.zero_()
        du = du_partial.sum(0)
        return dv.view(ctx.v_shape), (du * wn).to(w_query.dtype), (du * wq).to(w_norm.dtype), None
