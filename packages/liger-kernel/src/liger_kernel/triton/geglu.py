"""GEGLU gate, portable Triton kernels (math: :mod:`liger_kernel.ops.geglu`).

tanh is taken as 2 * sigmoid(2u) - 1 (``tl.*`` math only, so the interpreter runs it).

Launch and memory as in :mod:`liger_kernel.triton.swiglu`: a persistent grid
over tiles of the gate's elements, rows read through their strides; da and db
overwrite non-leaf a and b.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.triton.swiglu import gate_backward, gate_forward, gate_offsets

SQRT_2_OVER_PI: tl.constexpr = tl.constexpr(0.7978845608028654)
GELU_CUBIC: tl.constexpr = tl.constexpr(0.044715)


@triton.jit
def _tanh_of_gelu_argument(a):
    u = SQRT_2_OVER_PI * (a + GELU_CUBIC * a * a * a)
    return 2.0 * tl.sigmoid(2.0 * u) - 1.0


@triton.jit
def _gelu_mul_forward_kernel(
    A, B, C, n_elements, width, a_row_stride, b_row_stride,
    ACC: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr, STAGES: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    for tile in tl.range(pid, tl.cdiv(n_elements, BLOCK), tl.num_programs(0), num_stages=STAGES):
        offsets = tile * BLOCK + lanes
        mask = offsets < n_elements
        a = tl.load(A + gate_offsets(offsets, width, a_row_stride, ROWS), mask=mask, other=0.0).to(ACC)
        b = tl.load(B + gate_offsets(offsets, width, b_row_stride, ROWS), mask=mask, other=0.0).to(ACC)
        c = 0.5 * a * (1.0 + _tanh_of_gelu_argument(a)) * b
        tl.store(C + offsets, c.to(C.dtype.element_ty), mask=mask)


@triton.jit
def _gelu_mul_backward_kernel(
    DC,
    A,
    B,
    DA,
    DB,
    n_elements,
    width,
    a_row_stride,
    b_row_stride,
    da_row_stride,
    db_row_stride,
    COMPUTE_DA: tl.constexpr,
    COMPUTE_DB: tl.constexpr,
    ACC: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    for tile in tl.range(pid, tl.cdiv(n_elements, BLOCK), tl.num_programs(0), num_stages=STAGES):
        offsets = tile * BLOCK + lanes
        mask = offsets < n_elements
        dc = tl.load(DC + offsets, mask=mask, other=0.0).to(ACC)
        a = tl.load(A + gate_offsets(offsets, width, a_row_stride, ROWS), mask=mask, other=0.0).to(ACC)
        t = _tanh_of_gelu_argument(a)
        if COMPUTE_DA:
            b = tl.load(B + gate_offsets(offsets, width, b_row_stride, ROWS), mask=mask, other=0.0).to(ACC)
            slope = 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * a * a)
            da_at = gate_offsets(offsets, width, da_row_stride, ROWS)
            tl.store(DA + da_at, (dc * b * slope).to(DA.dtype.element_ty), mask=mask)
        if COMPUTE_DB:
            gelu = 0.5 * a * (1.0 + t)
            db_at = gate_offsets(offsets, width, db_row_stride, ROWS)
            tl.store(DB + db_at, (dc * gelu).to(DB.dtype.element_ty), mask=mask)


class GELUMulFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return gate_forward(ctx, a, b, _gelu_mul_forward_kernel)

    @staticmethod
    def backward(ctx: Any, dc: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return gate_backward(ctx, dc, _gelu_mul_backward_kernel)
