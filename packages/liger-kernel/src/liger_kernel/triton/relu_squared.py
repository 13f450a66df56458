"""Squared ReLU, portable Triton kernels (math: :mod:`liger_kernel.ops.relu_squared`).

Launched as the gates are (:func:`liger_kernel.triton.swiglu.gate_launch`): X
streamed as one flat range of tiles of ``profile.gate_tile`` elements. As the
op contract allows (``overwrites``), backward writes dx over X when X is a
non-leaf tensor that requires grad (or a contiguous copy made here), so the
activation's backward needs no buffer besides dy.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.ops._contract import mark_overwritten, overwritable
from liger_kernel.triton.launch import accumulator_dtype
from liger_kernel.triton.swiglu import gate_launch


@triton.jit
def _relu_squared_forward_kernel(X, Y, n_elements, ACC: tl.constexpr, BLOCK: tl.constexpr, STAGES: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    for tile in tl.range(pid, tl.cdiv(n_elements, BLOCK), tl.num_programs(0), num_stages=STAGES):
        offsets = tile * BLOCK + lanes
        mask = offsets < n_elements
        r = tl.maximum(tl.load(X + offsets, mask=mask, other=0.0).to(ACC), 0.0)
        tl.store(Y + offsets, (r * r).to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _relu_squared_backward_kernel(DY, X, DX, n_elements, ACC: tl.constexpr, BLOCK: tl.constexpr, STAGES: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    for tile in tl.range(pid, tl.cdiv(n_elements, BLOCK), tl.num_programs(0), num_stages=STAGES):
        offsets = tile * BLOCK + lanes
        mask = offsets < n_elements
        dy = tl.load(DY + offsets, mask=mask, other=0.0).to(ACC)
        r = tl.maximum(tl.load(X + offsets, mask=mask, other=0.0).to(ACC), 0.0)
        # each element is read before the same element of DX (possibly X itself) is written
        tl.store(DX + offsets, (2.0 * r * dy).to(DX.dtype.element_ty), mask=mask)


def _launch(kernel: Any, n_elements: int, bytes_per_element: int, device: torch.device, dtype: torch.dtype, *ptrs):
    launch, stages = gate_launch(device_profile(device), n_elements, bytes_per_element)
    kernel[(launch.grid,)](
        *ptrs,
        n_elements,
        ACC=accumulator_dtype(dtype),
        BLOCK=launch.block,
        STAGES=stages,
        num_warps=launch.num_warps,
    )


class ReLUSquaredFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, X: torch.Tensor) -> torch.Tensor:
        contiguous = X.contiguous()
        flat = contiguous.view(-1)
        # a copy made here is ours to overwrite; X itself only where the contract allows
        ctx.overwrite = contiguous is not X or overwritable(ctx, X)
        ctx.save_for_backward(flat)
        ctx.shape = X.shape
        y = torch.empty(X.shape, dtype=X.dtype, device=X.device)
        if flat.numel():
            _launch(_relu_squared_forward_kernel, flat.numel(), 2 * flat.element_size(), X.device, X.dtype, flat, y)
        return y

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> torch.Tensor:
        (flat,) = ctx.saved_tensors
        dx = flat if ctx.overwrite else torch.empty_like(flat)
        if flat.numel():
            dy = dY.contiguous().view(-1)
            _launch(
                _relu_squared_backward_kernel,
                flat.numel(),
                3 * flat.element_size(),
                dY.device,
                flat.dtype,
                dy,
                flat,
                dx,
            )
        if ctx.overwrite:
            mark_overwritten(dx)
        # a new tensor object (a view), so a leaf's .grad takes the storage without a copy
        return dx.view(ctx.shape)
