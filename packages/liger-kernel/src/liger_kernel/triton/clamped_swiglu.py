"""Clamped SwiGLU gate, portable Triton kernels (math: :mod:`liger_kernel.ops.clamped_swiglu`).

x is walked as one flat range: output element j reads x's elements 2j (gate)
and 2j + 1 (up) of the contiguous input, whatever the leading shape, so the
kernels are elementwise over tiles of ``profile.gate_tile`` output elements,
one program per tile where the grid allows (as the SwiGLU gate's, see
:func:`liger_kernel.triton.swiglu.gate_launch`). The two loads are stride-2
but affine in the lane index, and together read each x tile once.

The clamps and the sigmoid are recomputed in backward, which reads only x and
dc. As the op contract allows (``overwrites``), backward writes dx over x when
x is a non-leaf tensor that requires grad (or the contiguous copy made here):
each program reads a tile's pairs before it writes their gradients, and no two
programs touch the same pair.

The clamps are written with ``tl.where`` rather than min/max so that a NaN in
x stays NaN, as ``torch.clamp`` keeps it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.ops._contract import mark_overwritten, overwritable
from liger_kernel.triton.launch import RowLaunch, accumulator_dtype
from liger_kernel.triton.swiglu import gate_launch


@triton.jit
def _clamp_pair(g, u, limit):
    gc = tl.where(g > limit, limit, g)
    uc = tl.where(u > limit, limit, tl.where(u < -limit, -limit, u))
    return gc, uc


@triton.jit
def _clamped_swiglu_forward_kernel(
    X, C, n_out, alpha, limit, ACC: tl.constexpr, BLOCK: tl.constexpr, STAGES: tl.constexpr
):
    pid = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    for tile in tl.range(pid, tl.cdiv(n_out, BLOCK), tl.num_programs(0), num_stages=STAGES):
        offsets = tile * BLOCK + lanes
        mask = offsets < n_out
        g = tl.load(X + 2 * offsets, mask=mask, other=0.0).to(ACC)
        u = tl.load(X + 2 * offsets + 1, mask=mask, other=0.0).to(ACC)
        gc, uc = _clamp_pair(g, u, limit)
        c = (uc + 1.0) * gc * tl.sigmoid(alpha * gc)
        tl.store(C + offsets, c.to(C.dtype.element_ty), mask=mask)


@triton.jit
def _clamped_swiglu_backward_kernel(
    DC, X, DX, n_out, alpha, limit, ACC: tl.constexpr, BLOCK: tl.constexpr, STAGES: tl.constexpr
):
    pid = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    for tile in tl.range(pid, tl.cdiv(n_out, BLOCK), tl.num_programs(0), num_stages=STAGES):
        offsets = tile * BLOCK + lanes
        mask = offsets < n_out
        dc = tl.load(DC + offsets, mask=mask, other=0.0).to(ACC)
        g = tl.load(X + 2 * offsets, mask=mask, other=0.0).to(ACC)
        u = tl.load(X + 2 * offsets + 1, mask=mask, other=0.0).to(ACC)
        gc, uc = _clamp_pair(g, u, limit)
        s = tl.sigmoid(alpha * gc)
        dg = dc * (uc + 1.0) * s * (1.0 + alpha * gc * (1.0 - s))
        du = dc * gc * s
        # the clamps' gradient: through inside the range (bounds included), 0 outside
        dg = tl.where(g <= limit, dg, 0.0)
        du = tl.where((u >= -limit) & (u <= limit), du, 0.0)
        tl.store(DX + 2 * offsets, dg.to(DX.dtype.element_ty), mask=mask)
        tl.store(DX + 2 * offsets + 1, du.to(DX.dtype.element_ty), mask=mask)


def _launch(device: torch.device, n_out: int, bytes_per_output: int, max_tile: int | None) -> tuple[RowLaunch, int]:
    profile = device_profile(device)
    if max_tile is not None and profile.gate_tile > max_tile:
        profile = dataclasses.replace(profile, gate_tile=max_tile)
    return gate_launch(profile, n_out, bytes_per_output)


def clamped_swiglu_forward(
    ctx: Any, x: torch.Tensor, alpha: float, limit: float, max_tile: int | None = None
) -> torch.Tensor:
    """c of the contract, saving the flat contiguous x (and whether dx may go
    over it) for :func:`clamped_swiglu_backward`; ``max_tile`` caps the tile
    (output elements per program) below the profile's."""
    contiguous = x.contiguous()
    ctx.overwrite = contiguous is not x or overwritable(ctx, x)
    ctx.x_shape, ctx.alpha, ctx.limit, ctx.max_tile = x.shape, float(alpha), float(limit), max_tile
    flat = contiguous.view(-1)
    ctx.save_for_backward(flat)
    c = torch.empty((*x.shape[:-1], x.shape[-1] // 2), dtype=x.dtype, device=x.device)
    n_out = c.numel()
    if n_out:
        launch, stages = _launch(x.device, n_out, 3 * x.element_size(), max_tile)
        _clamped_swiglu_forward_kernel[(launch.grid,)](
            flat,
            c,
            n_out,
            ctx.alpha,
            ctx.limit,
            ACC=accumulator_dtype(x.dtype),
            BLOCK=launch.block,
            STAGES=stages,
            num_warps=launch.num_warps,
        )
    return c


def clamped_swiglu_backward(ctx: Any, dc: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
    """(dx, None, None): dx over the saved x where ``ctx.overwrite`` allows."""
    (flat,) = ctx.saved_tensors
    if not ctx.needs_input_grad[0]:
        return None, None, None
    dx = flat if ctx.overwrite else torch.empty_like(flat)
    n_out = flat.numel() // 2
    if n_out:
        launch, stages = _launch(dc.device, n_out, 5 * flat.element_size(), ctx.max_tile)
        _clamped_swiglu_backward_kernel[(launch.grid,)](
            dc.contiguous().view(-1),
            flat,
            dx,
            n_out,
            ctx.alpha,
            ctx.limit,
            ACC=accumulator_dtype(flat.dtype),
            BLOCK=launch.block,
            STAGES=stages,
            num_warps=launch.num_warps,
        )
    if ctx.overwrite:
        mark_overwritten(dx)
    # a new tensor object (a view), so a leaf's .grad takes the storage without a copy
    return dx.view(ctx.x_shape), None, None


class ClampedSwiGLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, alpha: float, limit: float) -> torch.Tensor:
        return clamped_swiglu_forward(ctx, x, alpha, limit)

    @staticmethod
    def backward(ctx: Any, dc: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        return clamped_swiglu_backward(ctx, dc)
