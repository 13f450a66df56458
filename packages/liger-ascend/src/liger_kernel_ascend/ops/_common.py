"""Launch helpers shared by the NPU kernels."""

from __future__ import annotations

import torch

from liger_kernel.dispatch import device_profile
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
    profile = device_profile(device)
    return plan_elementwise(
        numel,
        dtype.itemsize,
        FOOTPRINTS[op],
        cores=profile.compute_units,
        budget_bytes=profile.onchip_bytes,
        max_grid=profile.max_grid,
    )


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` as (rows, last dim) with unit column stride: a view where possible."""
    rows = x.reshape(-1, x.shape[-1])
    if rows.stride(-1) != 1 and rows.shape[-1] > 1:
        rows = rows.contiguous()
    return rows
