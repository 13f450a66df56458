"""SwiGLU and GEGLU gates on the NPU, element-wise over flat tiles (math:
:mod:`liger_kernel.ops.swiglu`, :mod:`liger_kernel.ops.geglu`; tanh from
tl.exp, no libdevice).

NPU constraints answered: the tensors are walked as one flat range in tiles
of ``BLOCK`` elements sized by the unified-buffer planner, which counts the
double-buffered DMA tiles; one program per vector core strides over the
tiles, so the grid never exceeds 65535 whatever the tensor size. Why not the
portable kernels of liger_kernel.triton: their fixed 4096-element tile keeps
about 144 KiB of fp32 values live in the GEGLU backward (measured by the
strict NPU mock), which with the compiler's double-buffered bf16 DMA tiles
passes the 192 KiB UB; the planner's tiles peak at about 88 KiB. Inputs that
are not contiguous are copied first, as a flat walk needs. As the op contract
allows (``overwrites``), backward writes da and db over a and b when they are
non-leaf tensors (or our own contiguous copies), saving two activations.
SwiGLU's multipliers (g, d) are run-time scalars of the shared kernels, read
only when ``SCALED`` (a constexpr) says they are not both 1: the plain gates
compile to the kernels they were before the multipliers (GEGLU's always), and
a scaled gate is a variant of its own in the UB calibration.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.ops._contract import mark_overwritten, overwritable
from liger_kernel_ascend.ops._common import flat_plan

SILU, GELU_TANH = 0, 1
SQRT_2_OVER_PI = 0.7978845608028654
GELU_CUBIC = 0.044715


@triton.jit
def tanh(u):
    """tanh from exp(-2|u|) in (0, 1]: tl.* math only, and nothing overflows."""
    e = tl.exp(-2.0 * tl.abs(u))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(u < 0, -t, t)


@triton.jit
def _gate_forward(
    A, B, C, numel, gate_multiplier, down_multiplier, GATE: tl.constexpr, SCALED: tl.constexpr, BLOCK: tl.constexpr
):  # fmt: skip
    n_tiles = tl.cdiv(numel, BLOCK)
    for tile in tl.range(tl.program_id(0), n_tiles, tl.num_programs(0)):
        offsets = tl.cast(tile, tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < numel
        a = tl.load(A + offsets, mask=mask, other=0.0).to(tl.float32)
        b = tl.load(B + offsets, mask=mask, other=0.0).to(tl.float32)
        if SCALED:
            a = a * gate_multiplier
            b = b * down_multiplier
        if GATE == 0:
            gate = a * tl.sigmoid(a)
        else:
            gate = 0.5 * a * (1.0 + tanh(0.7978845608028654 * (a + 0.044715 * a * a * a)))
        tl.store(C + offsets, (gate * b).to(C.dtype.element_ty), mask=mask)


@triton.jit
def _gate_backward(
    DC, A, B, DA, DB, numel, gate_multiplier, down_multiplier,
    GATE: tl.constexpr, SCALED: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    n_tiles = tl.cdiv(numel, BLOCK)
    for tile in tl.range(tl.program_id(0), n_tiles, tl.num_programs(0)):
        offsets = tl.cast(tile, tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < numel
        dc = tl.load(DC + offsets, mask=mask, other=0.0).to(tl.float32)
        a = tl.load(A + offsets, mask=mask, other=0.0).to(tl.float32)
        b = tl.load(B + offsets, mask=mask, other=0.0).to(tl.float32)
        if SCALED:
            dc = dc * down_multiplier
            a = a * gate_multiplier
        if GATE == 0:
            s = tl.sigmoid(a)
            gate = a * s
            dgate = s * (1.0 + a * (1.0 - s))
        else:
            t = tanh(0.7978845608028654 * (a + 0.044715 * a * a * a))
            gate = 0.5 * a * (1.0 + t)
            dgate = 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * a * a)
        if SCALED:
            dgate = dgate * gate_multiplier
        tl.store(DA + offsets, (dc * b * dgate).to(DA.dtype.element_ty), mask=mask)
        tl.store(DB + offsets, (dc * gate).to(DB.dtype.element_ty), mask=mask)


def _gate_apply(
    gate: int, a: torch.Tensor, b: torch.Tensor, multipliers: tuple[float, float] = (1.0, 1.0)
) -> torch.Tensor:
    c = torch.empty_like(a)
    if a.numel():
        variant = dict(GATE=gate, SCALED=multipliers != (1.0, 1.0))
        plan = flat_plan(_gate_forward, a.numel(), a.dtype, a.device, variant)
        _gate_forward[(plan.grid,)](a, b, c, a.numel(), *multipliers, **variant, BLOCK=plan.block)
    return c


def _gate_grads(
    gate: int,
    dc: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    overwrite: tuple[bool, bool],
    multipliers: tuple[float, float] = (1.0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """(da, db); with ``overwrite`` they are written over a and b (each element
    is read before the same element is written)."""
    dc = dc.contiguous()
    da = a if overwrite[0] else torch.empty_like(a)
    db = b if overwrite[1] else torch.empty_like(b)
    if a.numel():
        variant = dict(GATE=gate, SCALED=multipliers != (1.0, 1.0))
        plan = flat_plan(_gate_backward, a.numel(), a.dtype, a.device, variant)
        _gate_backward[(plan.grid,)](dc, a, b, da, db, a.numel(), *multipliers, **variant, BLOCK=plan.block)
    mark_overwritten(*(grad for grad, over in zip((da, db), overwrite) if over))
    return da, db


def _save_inputs(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Contiguous a and b, saved for backward with whether each may take its gradient.

    The op contract (``overwrites``) lets a non-leaf a or b be overwritten; a
    copy made here is ours anyway. Tensors sharing storage are never
    overwritten: one's gradient would land on the other's values."""
    a_c, b_c = a.contiguous(), b.contiguous()
    shared = a_c.untyped_storage().data_ptr() == b_c.untyped_storage().data_ptr()
    ctx.overwrite = tuple(
        not shared and (own is not given or overwritable(ctx, given)) for given, own in ((a, a_c), (b, b_c))
    )
    ctx.save_for_backward(a_c, b_c)
    return a_c, b_c


class SiLUMulFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, a: torch.Tensor, b: torch.Tensor, gate_multiplier: float = 1.0, down_multiplier: float = 1.0
    ) -> torch.Tensor:
        ctx.multipliers = (float(gate_multiplier), float(down_multiplier))
        return _gate_apply(SILU, *_save_inputs(ctx, a, b), ctx.multipliers)

    @staticmethod
    def backward(ctx: Any, dc: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return (*_gate_grads(SILU, dc, *ctx.saved_tensors, ctx.overwrite, ctx.multipliers), None, None)


class GELUMulFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return _gate_apply(GELU_TANH, *_save_inputs(ctx, a, b))

    @staticmethod
    def backward(ctx: Any, dc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _gate_grads(GELU_TANH, dc, *ctx.saved_tensors, ctx.overwrite)
