"""Launch helpers shared by the NPU kernels (``as_rows`` is the public one of :mod:`liger_kernel.triton.launch`)."""

from __future__ import annotations

import torch

from liger_kernel.dispatch import device_profile
from liger_kernel.triton.launch import as_rows
from liger_kernel_ascend.tiling import FOOTPRINTS, TilePlan, plan_elementwise, plan_rows

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


def row_plan(
    op: str, n_rows: int, width: int, dtype: torch.dtype, device: torch.device, max_rows_per_step: int = 64
) -> TilePlan:
    """The tiling plan of row op ``op`` (a key of ``tiling.FOOTPRINTS``) on
    ``device``; kernels that take one row per step pass ``max_rows_per_step=1``."""
    check_npu_dtype(op, dtype)
    profile = device_profile(device)
    return plan_rows(
        n_rows,
        width,
        dtype.itemsize,
        FOOTPRINTS[op],
        cores=profile.compute_units,
        budget_bytes=profile.onchip_bytes,
        max_grid=profile.max_grid,
        max_rows_per_step=max_rows_per_step,
    )


def flat_plan(op: str, numel: int, dtype: torch.dtype, device: torch.device) -> TilePlan:
    """The tiling plan of element-wise op ``op`` over ``numel`` elements on ``device``."""
    check_npu_dtype(op, dtype)
    profile = device_profile(device)
    return plan_elementwise(
        numel,
        dtype.itemsize,
        FOOTPRINTS[op],
        cores=profile.compute_units,
        budget_bytes=profile.onchip_bytes,
        max_grid=profile.max_grid,
    )


__all__ = ["as_rows", "check_npu_dtype", "flat_plan", "row_plan"]
