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
``pid, pid + grid, ...`` for grids the launcher caps). Rows of a and b that are
not packed (halves of one fused gate_up projection, padded rows: the last
dimension unit-stride, the others collapsing to one row stride) are read and
written where they lie, through their row strides (``ROWS``): no copy. Any
other layout is copied to a contiguous one first.
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
def gate_offsets(offsets, width, row_stride, ROWS: tl.constexpr):
    """Where element ``offsets`` of a (rows, width) gate operand lies: the flat
    index itself for packed rows, else row * row_stride + column."""
    if ROWS:
        row = offsets // width
        return row * row_stride + (offsets - row * width)
    return offsets


@triton.jit
def _silu_mul_forward_kernel(
    A, B, C, n_elements, width, a_row_stride, b_row_stride, gate_multiplier, down_multiplier,
    ACC: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr, STAGES: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    for tile in tl.range(pid, tl.cdiv(n_elements, BLOCK), tl.num_programs(0), num_stages=STAGES):
        offsets = tile * BLOCK + lanes
        mask = offsets < n_elements
        a_at = gate_offsets(offsets, width, a_row_stride, ROWS)
        b_at = gate_offsets(offsets, width, b_row_stride, ROWS)
        u = tl.load(A + a_at, mask=mask, other=0.0).to(ACC) * gate_multiplier
        b = tl.load(B + b_at, mask=mask, other=0.0).to(ACC)
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
    width,
    a_row_stride,
    b_row_stride,
    da_row_stride,
    db_row_stride,
    gate_multiplier,
    down_multiplier,
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
        dc = tl.load(DC + offsets, mask=mask, other=0.0).to(ACC) * down_multiplier
        u = tl.load(A + gate_offsets(offsets, width, a_row_stride, ROWS), mask=mask, other=0.0).to(ACC)
        u = u * gate_multiplier
        s = tl.sigmoid(u)
        if COMPUTE_DA:
            b = tl.load(B + gate_offsets(offsets, width, b_row_stride, ROWS), mask=mask, other=0.0).to(ACC)
            da = dc * gate_multiplier * b * s * (1.0 + u * (1.0 - s))
            da_at = gate_offsets(offsets, width, da_row_stride, ROWS)
            tl.store(DA + da_at, da.to(DA.dtype.element_ty), mask=mask)
        if COMPUTE_DB:
            db_at = gate_offsets(offsets, width, db_row_stride, ROWS)
            tl.store(DB + db_at, (dc * u * s).to(DB.dtype.element_ty), mask=mask)


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


def _as_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` as (rows, width) over its own storage where its layout allows (the
    last dimension unit-stride, the others collapsing to one row stride), else a
    contiguous copy; a 0-D or empty ``x`` becomes contiguous rows of width 1."""
    if x.dim() == 0 or x.numel() == 0:
        return x.contiguous().view(-1, 1)
    if x.stride(-1) == 1 or x.shape[-1] == 1:
        try:
            return x.view(-1, x.shape[-1])
        except RuntimeError:  # leading dimensions that do not collapse to one stride
            pass
    return x.contiguous().view(-1, x.shape[-1])


def _row_stride(rows: torch.Tensor) -> int:
    # a single row has no pitch: read it as packed
    return rows.stride(0) if rows.shape[0] > 1 else rows.shape[1]


def save_gate_inputs(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a and b as (rows, width) (:func:`_as_rows`), saved for backward, and in
    ``ctx.overwrite`` whether each may take its own gradient (a copy made here
    always may)."""
    rows = []
    overwrite = []
    for given in (a, b):
        viewed = _as_rows(given)
        rows.append(viewed)
        copied = viewed.untyped_storage().data_ptr() != given.untyped_storage().data_ptr() or given.numel() == 0
        overwrite.append(copied or overwritable(ctx, given))
    # one's gradient would land on the other's values
    shared = rows[0].untyped_storage().data_ptr() == rows[1].untyped_storage().data_ptr()
    ctx.overwrite = (overwrite[0] and not shared, overwrite[1] and not shared)
    ctx.gate_shape = a.shape
    ctx.save_for_backward(*rows)
    return rows[0], rows[1]


def gate_grad_buffers(ctx: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(a_rows, b_rows, da, db): da over a_rows and db over b_rows where
    ``ctx.overwrite`` allows, new packed buffers otherwise, None where not needed."""
    a_rows, b_rows = ctx.saved_tensors
    grads = []
    for saved, needed, overwrite in zip((a_rows, b_rows), ctx.needs_input_grad, ctx.overwrite):
        fresh = None if not needed or overwrite else torch.empty(saved.shape, dtype=saved.dtype, device=saved.device)
        grads.append(None if not needed else saved if overwrite else fresh)
    return a_rows, b_rows, grads[0], grads[1]


def as_gate_grads(ctx: Any, da: torch.Tensor | None, db: torch.Tensor | None) -> tuple[Any, Any]:
    """The (rows, width) gradients in the gate's shape, each a new tensor object
    (a view), so a leaf's .grad takes the storage without a copy."""
    return tuple(None if grad is None else grad.view(ctx.gate_shape) for grad in (da, db))


def _layout(*operands: torch.Tensor) -> tuple[list[int], bool]:
    """The row strides of the operands, and whether any is not packed (``ROWS``)."""
    strides = [_row_stride(x) for x in operands]
    width = operands[0].shape[1]
    return strides, any(stride != width for stride in strides)


def gate_forward(
    ctx: Any, a: torch.Tensor, b: torch.Tensor, kernel: Any, scalars: tuple[float, ...] = ()
) -> torch.Tensor:
    """c = kernel(a, b, *scalars) over the gate's elements, saving what ``gate_backward`` reads."""
    a_rows, b_rows = save_gate_inputs(ctx, a, b)
    c = torch.empty(a.shape, dtype=a.dtype, device=a.device)
    profile = device_profile(a.device)
    launch, stages = gate_launch(profile, a_rows.numel(), 2 * a_rows.element_size())
    strides, strided = _layout(a_rows, b_rows)
    kernel[(launch.grid,)](
        a_rows,
        b_rows,
        c,
        a_rows.numel(),
        a_rows.shape[1],
        *strides,
        *scalars,
        ACC=accumulator_dtype(a.dtype),
        ROWS=strided,
        BLOCK=launch.block,
        STAGES=stages,
        num_warps=launch.num_warps,
    )
    return c


def gate_backward(
    ctx: Any, dc: torch.Tensor, kernel: Any, scalars: tuple[float, ...] = ()
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(da, db) from a gate backward ``kernel`` (after the forward's ``scalars``), over a and b where allowed."""
    a_rows, b_rows, da, db = gate_grad_buffers(ctx)
    da_out = da if da is not None else a_rows
    db_out = db if db is not None else b_rows
    profile = device_profile(dc.device)
    launch, stages = gate_launch(profile, a_rows.numel(), 3 * a_rows.element_size())
    strides, strided = _layout(a_rows, b_rows, da_out, db_out)
    kernel[(launch.grid,)](
        dc.contiguous().view(-1),
        a_rows,
        b_rows,
        da_out,
        db_out,
        a_rows.numel(),
        a_rows.shape[1],
        *strides,
        *scalars,
        COMPUTE_DA=da is not None,
        COMPUTE_DB=db is not None,
        ACC=accumulator_dtype(a_rows.dtype),
        ROWS=strided,
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
