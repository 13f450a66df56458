"""Softmax over the last dimension, portable Triton kernels
(math: :mod:`liger_kernel.ops.softmax`).

y is saved for the backward.

Layout: a persistent grid walking rows. A row that fits ``profile.max_block``
is loaded once and kept in registers. A wider row is walked in blocks: the
forward takes the row max m and s = sum(exp(x - m)) in one pass as an online softmax (each block rescales the
running sum by exp(m_old - m_new) when it raises the maximum), then writes y in
a second pass; the backward sums dy * y in one pass and writes dx in another.
-inf entries get probability 0 (the contract) also when every entry of the
leading blocks is -inf.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.triton.launch import accumulator_dtype, as_rows, launch, pipeline_stages, row_launch, shaped


@triton.jit
def _finite_or_zero(maximum):
    # While every value seen is -inf (masked attention scores), shifting by the
    # maximum would give exp(-inf - -inf) = nan; shifting by 0 gives exp(-inf) = 0.
    return tl.where(maximum == -float("inf"), 0.0, maximum)


@triton.jit
def _softmax_forward_kernel(
    X,
    x_row_stride,
    Y,
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
            # masked lanes read -inf so that they add exp(-inf) = 0 to the sum
            x = tl.load(X + row * x_row_stride + cols, mask=mask, other=-float("inf")).to(ACC)
            exponentials = tl.exp(x - tl.max(x, axis=0))
            y = exponentials / tl.sum(exponentials, axis=0)
            tl.store(Y + row * n_cols + cols, y.to(Y.dtype.element_ty), mask=mask)
    else:
        for row in tl.range(pid, n_rows, tl.num_programs(0)):
            # the first block starts the running maximum and sum (typed as ACC, as the loop needs)
            x = tl.load(X + row * x_row_stride + cols, mask=cols < n_cols, other=-float("inf")).to(ACC)
            running_max = tl.max(x, axis=0)
            running_sum = tl.sum(tl.exp(x - _finite_or_zero(running_max)), axis=0)
            for start in tl.range(BLOCK, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=-float("inf")).to(ACC)
                new_max = tl.maximum(running_max, tl.max(x, axis=0))
                shift = _finite_or_zero(new_max)
                running_sum = running_sum * tl.exp(running_max - shift) + tl.sum(tl.exp(x - shift), axis=0)
                running_max = new_max
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                x = tl.load(X + row * x_row_stride + start + cols, mask=mask, other=-float("inf")).to(ACC)
                y = tl.exp(x - running_max) / running_sum
                tl.store(Y + row * n_cols + start + cols, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _softmax_backward_kernel(
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
            y = tl.load(Y + row * n_cols + cols, mask=mask, other=0.0).to(ACC)
            dy = tl.load(DY + row * dy_row_stride + cols, mask=mask, other=0.0).to(ACC)
            dx = y * (dy - tl.sum(dy * y, axis=0))
            tl.store(DX + row * n_cols + cols, dx.to(DX.dtype.element_ty), mask=mask)
    else:
        for row in tl.range(pid, n_rows, tl.num_programs(0)):
            products = tl.zeros([BLOCK], dtype=ACC)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                y = tl.load(Y + row * n_cols + start + cols, mask=mask, other=0.0).to(ACC)
                dy = tl.load(DY + row * dy_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                products += dy * y
            dot = tl.sum(products, axis=0)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                y = tl.load(Y + row * n_cols + start + cols, mask=mask, other=0.0).to(ACC)
                dy = tl.load(DY + row * dy_row_stride + start + cols, mask=mask, other=0.0).to(ACC)
                tl.store(DX + row * n_cols + start + cols, (y * (dy - dot)).to(DX.dtype.element_ty), mask=mask)


class SoftmaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, input_: torch.Tensor) -> torch.Tensor:
        x = input_  # 0.8.5's name in the signature
        x_rows = as_rows(x)
        n_rows, n_cols = x_rows.shape
        y = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
        if n_rows:
            profile = device_profile(x.device)
            plan = row_launch(profile, n_rows, n_cols)
            single_block = plan.block >= n_cols
            launch(
                profile,
                _softmax_forward_kernel,
                plan.grid,
                x_rows,
                x_rows.stride(0),
                y,
                n_rows,
                n_cols,
                ACC=accumulator_dtype(x.dtype),
                BLOCK=plan.block,
                SINGLE_BLOCK=single_block,
                # a row walked in blocks has two pipelined loops, each with its own buffers
                STAGES=pipeline_stages(profile, (1 if single_block else 2) * plan.block * x.element_size()),
                num_warps=plan.num_warps,
            )
        ctx.save_for_backward(y)
        ctx.x_shape = x.shape
        return shaped(y, x.shape)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        n_rows, n_cols = y.shape
        dx = torch.empty_like(y)
        if n_rows:
            dy_rows = as_rows(dy)
            profile = device_profile(y.device)
            plan = row_launch(profile, n_rows, n_cols)
            single_block = plan.block >= n_cols
            launch(
                profile,
                _softmax_backward_kernel,
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
        return shaped(dx, ctx.x_shape)
