"""SwiGLU gate, portable Triton kernels (math: :mod:`liger_kernel.ops.swiglu`).

Forward:  c = silu(a) * b,  silu(a) = a * s,  s = sigmoid(a)
Backward: da = dc * b * s * (1 + a * (1 - s));  db = dc * a * s
computed in fp32 (fp64 for fp64 inputs), stored in the input dtype; s is
recomputed in the backward rather than saved.

a and b are streamed as one flat range: a persistent grid of programs, each
walking tiles ``pid, pid + grid, ...`` of ``tile_launch(...).block`` elements.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.triton._launch import accumulator_dtype, pipeline_stages, tile_launch


@triton.jit
def _silu_mul_forward_kernel(A, B, C, n_elements, ACC: tl.constexpr, BLOCK: tl.constexpr, STAGES: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    for tile in tl.range(pid, tl.cdiv(n_elements, BLOCK), tl.num_programs(0), num_stages=STAGES):
        offsets = tile * BLOCK + lanes
        mask = offsets < n_elements
        a = tl.load(A + offsets, mask=mask, other=0.0).to(ACC)
        b = tl.load(B + offsets, mask=mask, other=0.0).to(ACC)
        c = a * tl.sigmoid(a) * b
        tl.store(C + offsets, c.to(C.dtype.element_ty), mask=mask)


@triton.jit
def _silu_mul_backward_kernel(
    DC,
    A,
    B,
    DA,
    DB,
    n_elements,
    COMPUTE_DA: tl.constexpr,
    COMPUTE_DB: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    for tile in tl.range(pid, tl.cdiv(n_elements, BLOCK), tl.num_programs(0), num_stages=STAGES):
        offsets = tile * BLOCK + lanes
        mask = offsets < n_elements
        dc = tl.load(DC + offsets, mask=mask, other=0.0).to(ACC)
        a = tl.load(A + offsets, mask=mask, other=0.0).to(ACC)
        s = tl.sigmoid(a)
        if COMPUTE_DA:
            b = tl.load(B + offsets, mask=mask, other=0.0).to(ACC)
            da = dc * b * s * (1.0 + a * (1.0 - s))
            tl.store(DA + offsets, da.to(DA.dtype.element_ty), mask=mask)
        if COMPUTE_DB:
            tl.store(DB + offsets, (dc * a * s).to(DB.dtype.element_ty), mask=mask)


class SiLUMulFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a_flat, b_flat = a.contiguous().view(-1), b.contiguous().view(-1)
        c = torch.empty(a.shape, dtype=a.dtype, device=a.device)
        profile = device_profile(a.device)
        launch = tile_launch(profile, a_flat.numel())
        _silu_mul_forward_kernel[(launch.grid,)](
            a_flat,
            b_flat,
            c,
            a_flat.numel(),
            ACC=accumulator_dtype(a.dtype),
            BLOCK=launch.block,
            STAGES=pipeline_stages(profile, launch.block * 2 * a.element_size()),
            num_warps=launch.num_warps,
        )
        ctx.save_for_backward(a_flat, b_flat)
        return c

    @staticmethod
    def backward(ctx: Any, dc: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        a_flat, b_flat = ctx.saved_tensors
        needs_da, needs_db = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        da = torch.empty(dc.shape, dtype=a_flat.dtype, device=dc.device) if needs_da else None
        db = torch.empty(dc.shape, dtype=b_flat.dtype, device=dc.device) if needs_db else None
        profile = device_profile(dc.device)
        launch = tile_launch(profile, a_flat.numel())
        _silu_mul_backward_kernel[(launch.grid,)](
            dc.contiguous(),
            a_flat,
            b_flat,
            da if da is not None else a_flat,
            db if db is not None else b_flat,
            a_flat.numel(),
            COMPUTE_DA=needs_da,
            COMPUTE_DB=needs_db,
            ACC=accumulator_dtype(a_flat.dtype),
            BLOCK=launch.block,
            STAGES=pipeline_stages(profile, launch.block * 3 * a_flat.element_size()),
            num_warps=launch.num_warps,
        )
        return da, db
