"""Clamped SwiGLU gate, portable Triton kernels (math: :mod:`liger_kernel.ops.clamped_swiglu`).

x is walked as one flat range: output element j reads x's elements 2j (gate)
and 2j + 1 (up) of the contiguous input, whatever the leading shape, so the
kernels are elementwise over tiles of ``profile.gate_tile`` output elements,
one program per tile where the grid allows (as the SwiGLU gate's, see
:func:`liger_kernel.triton.swiglu.gate_launch`). A tile's pairs are one
contiguous 1-D load of 2 * BLOCK elements, reshaped to (BLOCK, 2) and split
into gate and up (``tl.split``); dx is the two gradients joined
(``tl.join``) and stored back as one 1-D tile. Two stride-2 accesses instead
would read and write the same bytes in two halves, and triton-ascend's TTIR
adapter refuses a masked stride-2 store (an assertion in its interleave
optimization); a 1-D tile also has no row pitch for the NPU's DMA to fault on.
On an H200 (bf16 x of 131072 x 5760, 4096 outputs per program) the pair tile
also ran faster: forward 0.61 ms against 0.79 (3.7 TB/s), backward 1.24 ms
against 1.45.

The clamps and the sigmoid are recomputed in backward, which reads only x and
dc. As the op contract allows (``overwrites``), backward writes dx over x when
x is a non-leaf tensor that requires grad (or the contiguous copy made here):
each program reads a tile's pairs before it writes their gradients, and no two
programs touch the same pair.

The clamps are written with ``tl.where`` rather than min/max so that a NaN in
x stays NaN, as ``torch.clamp`` keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.ops._contract import mark_overwritten, overwritable
from liger_kernel.triton.launch import accumulator_dtype
from liger_kernel.triton.swiglu import gate_launch


@triton.jit
def _clamp_pair(g, u, limit):
    gc = tl.where(g > limit, limit, g)
    uc = tl.where(u > limit, limit, tl.where(u < -limit, -limit, u))
    return gc, uc


@triton.jit
def _clamped_swiglu_forward_kernel(
    X, C, n_out, n_in, alpha, limit, ACC: tl.constexpr, BLOCK: tl.constexpr, STAGES: tl.constexpr
):
    pid = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    pair_lanes = tl.arange(0, 2 * BLOCK)
    for tile in tl.range(pid, tl.cdiv(n_out, BLOCK), tl.num_programs(0), num_stages=STAGES):
        offsets = tile * BLOCK + lanes
        pair_offsets = tile * (2 * BLOCK) + pair_lanes
        pairs = tl.load(X + pair_offsets, mask=pair_offsets < n_in, other=0.0).to(ACC)
        g, u = tl.split(tl.reshape(pairs, (BLOCK, 2)))
        gc, uc = _clamp_pair(g, u, limit)
        c = (uc + 1.0) * gc * tl.sigmoid(alpha * gc)
        tl.store(C + offsets, c.to(C.dtype.element_ty), mask=offsets < n_out)


@triton.jit
def _clamped_swiglu_backward_kernel(
    DC, X, DX, n_out, n_in, alpha, limit, ACC: tl.constexpr, BLOCK: tl.constexpr, STAGES: tl.constexpr
):
    pid = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    pair_lanes = tl.arange(0, 2 * BLOCK)
    for tile in tl.range(pid, tl.cdiv(n_out, BLOCK), tl.num_programs(0), num_stages=STAGES):
        offsets = tile * BLOCK + lanes
        pair_offsets = tile * (2 * BLOCK) + pair_lanes
        pair_mask = pair_offsets < n_in
        dc = tl.load(DC + offsets, mask=offsets < n_out, other=0.0).to(ACC)
        pairs = tl.load(X + pair_offsets, mask=pair_mask, other=0.0).to(ACC)
        g, u = tl.split(tl.reshape(pairs, (BLOCK, 2)))
        gc, uc = _clamp_pair(g, u, limit)
        s = tl.sigmoid(alpha * gc)
        dg = dc * (uc + 1.0) * s * (1.0 + alpha * gc * (1.0 - s))
        du = dc * gc * s
        # the clamps' gradient: through inside the range (bounds included), 0 outside
        dg = tl.where(g <= limit, dg, 0.0)
        du = tl.where((u >= -limit) & (u <= limit), du, 0.0)
        dx = tl.reshape(tl.join(dg, du), (2 * BLOCK,))
        tl.store(DX + pair_offsets, dx.to(DX.dtype.element_ty), mask=pair_mask)


#: How a backend sizes a launch of these kernels, where the profile's gate tile
#: does not suit it: (kernel, output elements, dtype, device) -> (grid, block),
#: block in output elements (a power of two); the launch then takes one
#: pipeline stage and no num_warps.
Sizer = Callable[[Any, int, torch.dtype, torch.device], tuple[int, int]]


def _launch(kernel: Any, args: tuple[Any, ...], n_out: int, bytes_per_output: int, sizer: Sizer | None) -> None:
    dtype, device = args[1].dtype, args[1].device
    meta: dict[str, Any] = {"ACC": accumulator_dtype(dtype)}
    if sizer is None:
        launch, stages = gate_launch(device_profile(device), n_out, bytes_per_output)
        grid = launch.grid
        meta.update(BLOCK=launch.block, STAGES=stages, num_warps=launch.num_warps)
    else:
        grid, block = sizer(kernel, n_out, dtype, device)
        meta.update(BLOCK=block, STAGES=1)
    kernel[(grid,)](*args, **meta)


def clamped_swiglu_forward(
    ctx: Any, x: torch.Tensor, alpha: float, limit: float, sizer: Sizer | None = None
) -> torch.Tensor:
    """c of the contract, saving the flat contiguous x (and whether dx may go
    over it) for :func:`clamped_swiglu_backward`; ``sizer`` sizes both
    launches in place of the profile's gate tile."""
    contiguous = x.contiguous()
    ctx.overwrite = contiguous is not x or overwritable(ctx, x)
    ctx.x_shape, ctx.alpha, ctx.limit, ctx.sizer = x.shape, float(alpha), float(limit), sizer
    flat = contiguous.view(-1)
    ctx.save_for_backward(flat)
    c = torch.empty((*x.shape[:-1], x.shape[-1] // 2), dtype=x.dtype, device=x.device)
    n_out = c.numel()
    if n_out:
        args = (flat, c, n_out, flat.numel(), ctx.alpha, ctx.limit)
        _launch(_clamped_swiglu_forward_kernel, args, n_out, 3 * x.element_size(), sizer)
    return c


def clamped_swiglu_backward(ctx: Any, dc: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
    """(dx, None, None): dx over the saved x where ``ctx.overwrite`` allows."""
    (flat,) = ctx.saved_tensors
    if not ctx.needs_input_grad[0]:
        return None, None, None
    dx = flat if ctx.overwrite else torch.empty_like(flat)
    n_out = flat.numel() // 2
    if n_out:
        args = (dc.contiguous().view(-1), flat, dx, n_out, flat.numel(), ctx.alpha, ctx.limit)
        _launch(_clamped_swiglu_backward_kernel, args, n_out, 5 * flat.element_size(), ctx.sizer)
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
