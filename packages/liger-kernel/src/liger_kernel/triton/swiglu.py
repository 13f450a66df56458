"""SwiGLU gate, portable Triton kernels (math: :mod:`liger_kernel.ops.swiglu`).

sigmoid(g * a) is recomputed in the backward rather than saved. The
multipliers are run-time scalars (fp32), so Falcon-H1's values compile no
kernel of their own.

As the op contract allows (``overwrites``), backward writes da and db over a
and b when they are non-leaf tensors that require grad (or contiguous copies
made here), so the gate's backward needs no activation-sized buffer besides
dc. Leaves, views of leaves and a, b sharing one storage get new buffers.

a and b are streamed as one flat range of tiles of ``profile.gate_tile``
elements, one program per tile (see :func:`gate_launch`; the kernels still walk tiles
``pid, pid + grid, ...`` for grids the launcher caps).
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.backend import DeviceProfile
from liger_kernel.dispatch import device_profile
from liger_kernel.ops._contract import mark_overwritten, overwritable
from liger_kernel.triton.launch import RowLaunch, accumulator_dtype, pipeline_stages


@triton.jit
def _silu_mul_forward_kernel(
    A, B, C, n_elements, gate_multiplier, down_multiplier,
    ACC: tl.constexpr, BLOCK: tl.constexpr, STAGES: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    for tile in tl.range(pid, tl.cdiv(n_elements, BLOCK), tl.num_programs(0), num_stages=STAGES):
        offsets = tile * BLOCK + lanes
        mask = offsets < n_elements
        u = tl.load(A + offsets, mask=mask, other=0.0).to(ACC) * gate_multiplier
        b = tl.load(B + offsets, mask=mask, other=0.0).to(ACC)
        c = u * tl.sigmoid(u) * b * down_multiplier
        tl.store(C + offsets, c.to(C.dtype.element_ty), mask=mask)


@triton.jit
def _silu_mul_backward_kernel(
    DC,
    A,
    B,
    DA,
    DB,
    n_elements,
    gate_multiplier,
    down_multiplier,
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
        dc = tl.load(DC + offsets, mask=mask, other=0.0).to(ACC) * down_multiplier
        u = tl.load(A + offsets, mask=mask, other=0.0).to(ACC) * gate_multiplier
        s = tl.sigmoid(u)
        if COMPUTE_DA:
            b = tl.load(B + offsets, mask=mask, other=0.0).to(ACC)
            da = dc * gate_multiplier * b * s * (1.0 + u * (1.0 - s))
            tl.store(DA + offsets, da.to(DA.dtype.element_ty), mask=mask)
        if COMPUTE_DB:
            tl.store(DB + offsets, (dc * u * s).to(DB.dtype.element_ty), mask=mask)


def gate_launch(profile: DeviceProfile, n_elements: int, bytes_per_element: int) -> tuple[RowLaunch, int]:
    """(grid, block, num_warps) and pipeline stages for a gate kernel loading
    ``bytes_per_element`` per element: one program per tile where the launcher
    allows (no loop to pipeline), else a persistent walk with the profile's
    pipelining."""
    block = min(profile.gate_tile, profile.max_block)
    tiles = max(1, -(-n_elements // block))
    grid = min(tiles, profile.max_grid)
    stages = 1 if grid == tiles else pipeline_stages(profile, block * bytes_per_element)
    return RowLaunch(grid, block, profile.num_warps(block)), stages


def save_gate_inputs(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat contiguous a and b, saved for backward, and in ``ctx.overwrite``
    whether each may take its own gradient (a copy made here always may)."""
    flats = []
    overwrite = []
    for given in (a, b):
        contiguous = given.contiguous()
        flats.append(contiguous.view(-1))
        overwrite.append(contiguous is not given or overwritable(ctx, given))
    # one's gradient would land on the other's values
    shared = flats[0].untyped_storage().data_ptr() == flats[1].untyped_storage().data_ptr()
    ctx.overwrite = (overwrite[0] and not shared, overwrite[1] and not shared)
    ctx.gate_shape = a.shape
    ctx.save_for_backward(*flats)
    return flats[0], flats[1]


def gate_grad_buffers(ctx: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(a_flat, b_flat, da, db): da over a_flat and db over b_flat where
    ``ctx.overwrite`` allows, new buffers otherwise, None where not needed."""
    a_flat, b_flat = ctx.saved_tensors
    grads = []
    for flat, needed, overwrite in zip((a_flat, b_flat), ctx.needs_input_grad, ctx.overwrite):
        grads.append(None if not needed else flat if overwrite else torch.empty_like(flat))
    return a_flat, b_flat, grads[0], grads[1]


def as_gate_grads(ctx: Any, da: torch.Tensor | None, db: torch.Tensor | None) -> tuple[Any, Any]:
    """The flat gradients in the gate's shape, each a new tensor object (a
    view), so a leaf's .grad takes the storage without a copy."""
    return tuple(None if grad is None else grad.view(ctx.gate_shape) for grad in (da, db))


def gate_forward(
    ctx: Any, a: torch.Tensor, b: torch.Tensor, kernel: Any, scalars: tuple[float, ...] = ()
) -> torch.Tensor:
    """c = kernel(a, b, *scalars) over the flattened gate, saving what ``gate_backward`` reads."""
    a_flat, b_flat = save_gate_inputs(ctx, a, b)
    c = torch.empty(a.shape, dtype=a.dtype, device=a.device)
    profile = device_profile(a.device)
    launch, stages = gate_launch(profile, a_flat.numel(), 2 * a_flat.element_size())
    kernel[(launch.grid,)](
        a_flat,
        b_flat,
        c,
        a_flat.numel(),
        *scalars,
        ACC=accumulator_dtype(a.dtype),
        BLOCK=launch.block,
        STAGES=stages,
        num_warps=launch.num_warps,
    )
    return c


def gate_backward(
    ctx: Any, dc: torch.Tensor, kernel: Any, scalars: tuple[float, ...] = ()
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(da, db) from a gate backward ``kernel`` (after the forward's ``scalars``), over a and b where allowed."""
    a_flat, b_flat, da, db = gate_grad_buffers(ctx)
    profile = device_profile(dc.device)
    launch, stages = gate_launch(profile, a_flat.numel(), 3 * a_flat.element_size())
    kernel[(launch.grid,)](
        dc.contiguous().view(-1),
        a_flat,
        b_flat,
        da if da is not None else a_flat,
        db if db is not None else b_flat,
        a_flat.numel(),
        *scalars,
        COMPUTE_DA=da is not None,
        COMPUTE_DB=db is not None,
        ACC=accumulator_dtype(a_flat.dtype),
        BLOCK=launch.block,
        STAGES=stages,
        num_warps=launch.num_warps,
    )
    mark_overwritten(*(grad for grad, over in zip((da, db), ctx.overwrite) if over))
    return as_gate_grads(ctx, da, db)


class SiLUMulFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, a: torch.Tensor, b: torch.Tensor, gate_multiplier: float = 1.0, down_multiplier: float = 1.0
    ) -> torch.Tensor:
        ctx.multipliers = (float(gate_multiplier), float(down_multiplier))
        return gate_forward(ctx, a, b, _silu_mul_forward_kernel, ctx.multipliers)

    @staticmethod
    def backward(ctx: Any, dc: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return (*gate_backward(ctx, dc, _silu_mul_backward_kernel, ctx.multipliers), None, None)
