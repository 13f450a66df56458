"""GPT-OSS's clamped SwiGLU gate on the NPU: the portable Triton kernels of
:mod:`liger_kernel.triton.clamped_swiglu`, launched as the NPU planner sizes
them (math: :mod:`liger_kernel.ops.clamped_swiglu`).

NPU constraints answered: the grid is one program per vector core striding
over the tiles (never past 65535), and the tile is the widest whose
calibrated UB cost fits the budget (``flat_plan``, as the NPU gates'), not
the portable gate tile (4096 outputs): by the UB calibration, bishengir
allocates 125 KiB for the backward at 1024 outputs and overflows the UB at
4096, while the forward takes 89 KiB (bf16) at 2048; the planner picks the
widest tile within the budget for each. The kernels read a tile's gate/up
pairs as one contiguous 1-D tile (no gather, no 2-D row pitch for the DMA to
fault on), which is also what triton-ascend compiles: a masked stride-2 store
trips an assertion in its TTIR adapter. float64 is refused with a clear error, as the NPU compiler
refuses fp64 kernels.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.triton.clamped_swiglu import clamped_swiglu_backward, clamped_swiglu_forward
from liger_kernel.triton.launch import accumulator_dtype
from liger_kernel_ascend.ops._common import check_npu_dtype, flat_plan


def _plan(kernel: Any, n_out: int, dtype: torch.dtype, device: torch.device) -> tuple[int, int]:
    plan = flat_plan(kernel, n_out, dtype, device, {"ACC": accumulator_dtype(dtype), "STAGES": 1})
    return plan.grid, plan.block


class ClampedSwiGLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, alpha: float, limit: float) -> torch.Tensor:
        check_npu_dtype("clamped_swiglu", x.dtype)
        return clamped_swiglu_forward(ctx, x, alpha, limit, sizer=_plan)

    @staticmethod
    def backward(ctx: Any, dc: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        return clamped_swiglu_backward(ctx, dc)


__all__ = ["ClampedSwiGLUFunction"]
