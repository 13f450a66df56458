"""Launch helpers shared by the NPU kernels (``as_rows`` is the public one of :mod:`liger_kernel.triton.launch`)."""

from __future__ import annotations

import functools
import logging

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


def row_plan(
    op: str,
    n_rows: int,
    width: int,
    dtype: torch.dtype,
    device: torch.device,
    max_rows_per_step: int = 64,
    tiled: tuple[torch.Tensor, ...] = (),
) -> TilePlan:
    """The tiling plan of row op ``op`` (a key of ``tiling.FOOTPRINTS``) on
    ``device``; kernels that take one row per step pass ``max_rows_per_step=1``.
    ``tiled`` are the 2-D tensors the kernel reads or writes in (rows, block)
    tiles: one of them with an unaligned row pitch limits the plan to one row
    per step (a 1-D tile has no pitch)."""
    check_npu_dtype(op, dtype)
    if not pitch_aligned(*tiled):
        max_rows_per_step = 1
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


__all__ = [
    "PITCH_ALIGN_BYTES",
    "as_rows",
    "check_npu_dtype",
    "flat_plan",
    "log_torch_fallback",
    "pitch_aligned",
    "row_plan",
]
