"""Launch helpers shared by the NPU kernels (``as_rows`` is the portable kernels' own)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

import torch

from liger_kernel.dispatch import device_profile
from liger_kernel.triton.launch import as_rows
from liger_kernel_ascend import ub_calibration
from liger_kernel_ascend.tiling import TilePlan, UBCost, plan_elementwise, plan_rows, plan_stacked
from liger_kernel_ascend.ub_calibration import kernel_name

#: Dtypes the NPU compiler refuses ("[fp8, fp64] is unsupported on Ascend"): the
#: vector cores have no fp64 arithmetic, and casting silently to fp32 would hand
#: back results less precise than the caller asked for.
NPU_UNSUPPORTED_DTYPES = frozenset({torch.float64})


def check_npu_dtype(op: str, dtype: torch.dtype) -> None:
    """Raise a clear TypeError for a dtype the Ascend kernels cannot compile."""
    if dtype in NPU_UNSUPPORTED_DTYPES:
        raise TypeError(
            f"liger-ascend {op}: {dtype} is not supported on Ascend NPUs (triton-ascend cannot compile fp64 "
            "kernels); cast the inputs to float32, or send the op to the torch backend "
            "(LIGER_KERNEL_BACKEND_<OP>=torch)"
        )


#: A multi-row tile's row pitch must be a multiple of this many bytes: the A3
#: vector cores fault on a 2-D DMA with any other pitch.
PITCH_ALIGN_BYTES = 32


def pitch_aligned(*rows: torch.Tensor) -> bool:
    """Whether every 2-D ``rows`` tensor has a row pitch a multi-row tile may use."""
    return all(t.stride(0) * t.element_size() % PITCH_ALIGN_BYTES == 0 for t in rows)


@functools.cache
def log_torch_fallback(op: str, reason: str) -> None:
    """Say once per (op, reason) that an op runs on the torch backend instead of its kernel."""
    logging.getLogger("liger_kernel").warning(
        "liger-ascend %s: %s; this call runs on the torch backend (torch_npu kernels) instead", op, reason
    )


def _cost(kernel: Any, dtype: torch.dtype, variant: Mapping[str, Any]) -> UBCost:
    return ub_calibration.cost(ub_calibration.kernel_name(kernel), ub_calibration.triton_dtype(dtype), variant)


def row_plan(
    kernel: Any,
    n_rows: int,
    width: int,
    dtype: torch.dtype,
    device: torch.device,
    variant: Mapping[str, Any],
    max_rows_per_step: int = 64,
    tiled: tuple[torch.Tensor, ...] = (),
) -> TilePlan:
    """The tiling plan of row kernel ``kernel`` launched with constexprs
    ``variant`` (all but its tile sizes and single-block flag) on ``device``,
    sized by the kernel's calibrated UB cost; kernels that take one row per
    step pass ``max_rows_per_step=1``. ``tiled`` are the 2-D tensors the kernel
    reads or writes in (rows, block) tiles: one of them with an unaligned row
    pitch limits the plan to one row per step (a 1-D tile has no pitch)."""
    check_npu_dtype(kernel_name(kernel), dtype)
    if not pitch_aligned(*tiled):
        max_rows_per_step = 1
    profile = device_profile(device)
    axes = ub_calibration.tiles(kernel_name(kernel))
    single_flag = axes.single_block if axes is not None else None
    if single_flag is None:
        walked = single = _cost(kernel, dtype, variant)
    else:
        walked = _cost(kernel, dtype, {**variant, single_flag: False})
        single = _cost(kernel, dtype, {**variant, single_flag: True})
    return plan_rows(
        n_rows,
        width,
        walked,
        single_block_cost=single,
        cores=profile.compute_units,
        budget_bytes=profile.onchip_bytes,
        max_grid=profile.max_grid,
        max_rows_per_step=max_rows_per_step,
    )


def stacked_plan(
    kernel: Any,
    n_items: int,
    stack: int,
    inner: int,
    dtype: torch.dtype,
    device: torch.device,
    variant: Mapping[str, Any],
) -> TilePlan:
    """The plan of a kernel that walks, per work item, ``stack`` rows of ``inner`` columns (see ``plan_stacked``)."""
    check_npu_dtype(kernel_name(kernel), dtype)
    profile = device_profile(device)
    return plan_stacked(
        n_items,
        stack,
        inner,
        _cost(kernel, dtype, variant),
        cores=profile.compute_units,
        budget_bytes=profile.onchip_bytes,
        max_grid=profile.max_grid,
    )


def flat_plan(
    kernel: Any, numel: int, dtype: torch.dtype, device: torch.device, variant: Mapping[str, Any]
) -> TilePlan:
    """The tiling plan of element-wise kernel ``kernel`` over ``numel`` elements on ``device``."""
    check_npu_dtype(kernel_name(kernel), dtype)
    profile = device_profile(device)
    return plan_elementwise(
        numel,
        _cost(kernel, dtype, variant),
        cores=profile.compute_units,
        budget_bytes=profile.onchip_bytes,
        max_grid=profile.max_grid,
    )


__all__ = [
    "PITCH_ALIGN_BYTES",
    "as_rows",
    "check_npu_dtype",
    "flat_plan",
    "log_torch_fallback",
    "pitch_aligned",
    "row_plan",
    "stacked_plan",
]
