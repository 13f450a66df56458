"""Sparsemax along one dimension, portable Triton kernels
(math: :mod:`liger_kernel.ops.sparsemax`).

tau is found, per row z = x - max(x) (``dim`` moved last), without a sort
by Michelot's fixed-point iteration, which is exact:
    t_0 = -1  (every z <= -1 lies outside the support: tau >= max(z) - 1)
    S_k = {i : z_i > t_k};  tau_k = (sum over S_k of z - 1) / |S_k|
    t_(k+1) = max(t_k, tau_k)
until |S_k| stops changing. tau_k never exceeds the true tau (S_k holds the
whole support), and each step drops the elements below tau_k, so the last S_k
is the support and its tau_k is tau exactly: no tolerance, no fixed step
count. Taking the max keeps t non-decreasing under rounding, so |S_k| never
grows and the loop ends after at most width steps; in practice 2 to 12
(measured on normal rows of widths 8 to 128256 and scales 0.01 to 1000).
Rounding: the sum of z over a wide support carries a rounding error, so tau
is refined once by the residual, tau += (sum over S of (z - tau) - 1) / |S|,
whose terms are the small y values, and ties follow the contract's rule
(``TIE_EPS`` units in the last place). y is saved for the backward.

Layout: a persistent grid walking rows. A row that fits half of
``profile.max_block`` (see ``sparsemax_launch``) stays in registers for every
step; a wider one is walked in blocks, one pass for the maximum, one per step,
one for the residual and one to write y (the backward: one pass for the
support sums, one to write dx).
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.backend import DeviceProfile
from liger_kernel.dispatch import device_profile
from liger_kernel.triton.launch import (
    MIN_BLOCK,
    RowLaunch,
    accumulator_dtype,
    as_rows,
    launch,
    pipeline_stages,
    row_block,
    shaped,
)


@triton.jit
def _support_step(z, threshold):
    # masked lanes hold -inf and never enter the support
    support = z > threshold
    size = tl.sum(support.to(tl.int32), axis=0)
    tau = (tl.sum(tl.where(support, z, 0.0), axis=0) - 1.0) / size
    return size, tau


@triton.jit
def _wide_support_step(X, row_start, row_max, threshold, n_cols, ACC: tl.constexpr, BLOCK: tl.constexpr):
    cols = tl.arange(0, BLOCK)
    sizes = tl.zeros([BLOCK], dtype=tl.int32)
    sums = tl.zeros([BLOCK], dtype=ACC)
    for start in tl.range(0, n_cols, BLOCK):
        mask = start + cols < n_cols
        z = tl.load(X + row_start + start + cols, mask=mask, other=-float("inf")).to(ACC) - row_max
        support = z > threshold
        sizes += support.to(tl.int32)
        sums += tl.where(support, z, 0.0)
    size = tl.sum(sizes, axis=0)
    return size, (tl.sum(sums, axis=0) - 1.0) / size


@triton.jit
def _wide_residual(X, row_start, row_max, threshold, tau, n_cols, ACC: tl.constexpr, BLOCK: tl.constexpr):
    cols = tl.arange(0, BLOCK)
    sums = tl.zeros([BLOCK], dtype=ACC)
    for start in tl.range(0, n_cols, BLOCK):
        mask = start + cols < n_cols
        z = tl.load(X + row_start + start + cols, mask=mask, other=-float("inf")).to(ACC) - row_max
        sums += tl.where(z > threshold, z - tau, 0.0)
    return tl.sum(sums, axis=0) - 1.0


@triton.jit
def _refined(tau, residual, size, tie_eps):
    # One step of iterative refinement: the residual sums the small y values
    # (about 1 in all), so its rounding error is far below that of tau's sum of
    # z. Values within ``tie`` of the refined tau are ties with it (a value
    # exactly equal to tau, common with half-precision inputs) and get 0, as in
    # exact arithmetic.
    tau = tau + residual / size
    return tau, tie_eps * (tl.abs(tau) + 16.0 / size)


@triton.jit
def _sparsemax_forward_kernel(
    X,
    x_row_stride,
    Y,
    n_rows,
    n_cols,
    tie_eps,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE_BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    if SINGLE_BLOCK:
        mask = cols < n_cols
        for row in tl.range(pid, n_rows, tl.num_programs(0), num_stages=STAGES):
            x = tl.load(X + row * x_row_stride + cols, mask=mask, other=-float("inf")).to(ACC)
            z = x - tl.max(x, axis=0)
            # max(z) - 1 = -1, typed as ACC for the loop
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
            y = tl.where(y > tie, y, 0.0)
            tl.store(Y + row * n_cols + cols, y.to(Y.dtype.element_ty), mask=mask)
    else:
        for row in tl.range(pid, n_rows, tl.num_programs(0)):
            row_start = row * x_row_stride
            maxima = tl.full([BLOCK], -float("inf"), dtype=ACC)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                x = tl.load(X + row_start + start + cols, mask=mask, other=-float("inf")).to(ACC)
                maxima = tl.maximum(maxima, x)
            row_max = tl.max(maxima, axis=0)
            threshold = row_max - row_max - 1.0
            size, tau = _wide_support_step(X, row_start, row_max, threshold, n_cols, ACC, BLOCK)
            previous_size = size + 1
            while size != previous_size:
                previous_size = size
                threshold = tl.maximum(threshold, tau)
                size, tau = _wide_support_step(X, row_start, row_max, threshold, n_cols, ACC, BLOCK)
            residual = _wide_residual(X, row_start, row_max, threshold, tau, n_cols, ACC, BLOCK)
            tau, tie = _refined(tau, residual, size, tie_eps)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                y = tl.load(X + row_start + start + cols, mask=mask, other=-float("inf")).to(ACC) - row_max - tau
                y = tl.where(y > tie, y, 0.0)
                tl.store(Y + row * n_cols + start + cols, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _sparsemax_backward_kernel(
    DY,
    dy_row_stride,
    Y,
    DX,
    n_rows,
    n_cols,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE_BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    if SINGLE_BLOCK:
        mask = cols < n_cols
        for row in tl.range(pid, n_rows, tl.num_programs(0), num_stages=STAGES):
            support = tl.load(Y + row * n_cols + cols, mask=mask, other=0.0) > 0
            dy = tl.load(DY + row * dy_row_stride + cols, mask=mask, other=0.0).to(ACC)
            support_mean = tl.sum(tl.where(support, dy, 0.0), axis=0) / tl.sum(support.to(tl.int32), axis=0)
            dx = tl.where(support, dy - support_mean, 0.0)
            tl.store(DX + row * n_cols + cols, dx.to(DX.dtype.element_ty), mask=mask)
    else:
        for row in tl.range(pid, n_rows, tl.num_programs(0)):
            sizes = tl.zeros([BLOCK], dtype=tl.int32)
            sums = tl.zeros([BLOCK], dtype=ACC)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                support = tl.load(Y + row * n_cols + start + cols, mask=mask, other=0.0) > 0
                dy = tl.load(DY + row * dy_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                sizes += support.to(tl.int32)
                sums += tl.where(support, dy, 0.0)
            support_mean = tl.sum(sums, axis=0) / tl.sum(sizes, axis=0)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                support = tl.load(Y + row * n_cols + start + cols, mask=mask, other=0.0) > 0
                dy = tl.load(DY + row * dy_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                dx = tl.where(support, dy - support_mean, 0.0)
                tl.store(DX + row * n_cols + start + cols, dx.to(DX.dtype.element_ty), mask=mask)


#: Relative width of a tie with the refined threshold, by accumulator (fp32,
#: fp64): 16 units in the last place, so that the refined tau's own rounding
#: stays inside it, while the grid of any half-precision input near tau (2**-8
#: or 2**-11 relative) stays far outside.
TIE_EPS = (2.0**-20, 2.0**-49)


def sparsemax_launch(profile: DeviceProfile, n_rows: int, n_cols: int) -> RowLaunch:
    """A persistent row launch whose block is at most half ``profile.max_block``:
    the forward keeps about eight fp32 values per element live (x, z, the
    support selections and sums: 128 KiB at a 4096-element block, measured by
    the strict NPU mock), more than the six a ``max_block`` is sized for."""
    block = min(row_block(n_cols, profile), max(MIN_BLOCK, profile.max_block // 2))
    return RowLaunch(profile.grid(n_rows), block, profile.num_warps(block))


class SparsemaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dim: int) -> torch.Tensor:
        moved = x.movedim(dim, -1)
        x_rows = as_rows(moved)
        n_rows, n_cols = x_rows.shape
        y = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
        if n_rows:
            profile = device_profile(x.device)
            plan = sparsemax_launch(profile, n_rows, n_cols)
            single_block = plan.block >= n_cols
            launch(
                profile,
                _sparsemax_forward_kernel,
                plan.grid,
                x_rows,
                x_rows.stride(0),
                y,
                n_rows,
                n_cols,
                TIE_EPS[x.dtype == torch.float64],
                ACC=accumulator_dtype(x.dtype),
                BLOCK=plan.block,
                SINGLE_BLOCK=single_block,
                STAGES=pipeline_stages(profile, (1 if single_block else 2) * plan.block * x.element_size()),
                num_warps=plan.num_warps,
            )
        ctx.save_for_backward(y)
        ctx.dim, ctx.moved_shape = dim, moved.shape
        return shaped(y, moved.shape).movedim(-1, dim)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor, None]:
        (y,) = ctx.saved_tensors
        n_rows, n_cols = y.shape
        dx = torch.empty_like(y)
        if n_rows:
            dy_rows = as_rows(dy.movedim(ctx.dim, -1))
            profile = device_profile(y.device)
            plan = sparsemax_launch(profile, n_rows, n_cols)
            single_block = plan.block >= n_cols
            launch(
                profile,
                _sparsemax_backward_kernel,
                plan.grid,
                dy_rows,
                dy_rows.stride(0),
                y,
                dx,
                n_rows,
                n_cols,
                ACC=accumulator_dtype(y.dtype),
                BLOCK=plan.block,
                SINGLE_BLOCK=single_block,
                STAGES=pipeline_stages(
                    profile, (1 if single_block else 2) * plan.block * (y.element_size() + dy_rows.element_size())
                ),
                num_warps=plan.num_warps,
            )
        return shaped(dx, ctx.moved_shape).movedim(-1, ctx.dim), None
