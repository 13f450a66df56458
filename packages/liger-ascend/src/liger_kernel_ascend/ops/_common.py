"""Launch helpers shared by the NPU kernels (``as_rows`` is the portable kernels' own)."""

from __future__ import annotations

import torch

from liger_kernel.dispatch import device_profile
from liger_kernel.triton._launch import as_rows
from liger_kernel_ascend.tiling import FOOTPRINTS, TilePlan, plan_elementwise, plan_rows


def row_plan(
    op: str, n_rows: int, width: int, dtype: torch.dtype, device: torch.device, max_rows_per_step: int = 64
) -> TilePlan:
    """The tiling plan of row op ``op`` (a key of ``tiling.FOOTPRINTS``) on
    ``device``; kernels that take one row per step pass ``max_rows_per_step=1``."""
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
    profile = device_profile(device)
    return plan_elementwise(
        numel,
        dtype.itemsize,
        FOOTPRINTS[op],
        cores=profile.compute_units,
        budget_bytes=profile.onchip_bytes,
        max_grid=profile.max_grid,
    )


__all__ = ["as_rows", "flat_plan", "row_plan"]
