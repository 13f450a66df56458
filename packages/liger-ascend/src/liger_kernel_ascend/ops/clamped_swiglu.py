"""GPT-OSS's clamped SwiGLU gate on the NPU: the portable Triton kernels of
:mod:`liger_kernel.triton.clamped_swiglu` with a smaller tile (math:
:mod:`liger_kernel.ops.clamped_swiglu`).

NPU constraints answered: the kernels walk the output as one flat range, one
program per tile up to the profile's grid (at most 65535 programs, the
launcher caps it and the programs then stride over the tiles); loads are
stride-2 over the interleaved x, affine in the lane index, so no gather. Why a
smaller tile than the portable one: the portable gate tile (``gate_tile``,
4096 output elements) keeps about ten fp32 blocks live in the backward (dc,
g, u, their clamps, the sigmoid, dg, du), some 160 KiB, which with the
compiler's double-buffered DMA tiles would pass the 192 KiB unified buffer
(as the GEGLU backward's 144 KiB does, see :mod:`.gates`), although the strict
NPU mock, which counts live values only, lets it through. :data:`MAX_TILE`
elements keep them near 40 KiB. An estimate, not a measurement: the kernels
are not yet in the UB calibration (``tools/ascend_compile``); a run of the
compile-ascend lane would measure them. float64 is refused with a clear error, as the NPU compiler refuses
fp64 kernels.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.triton.clamped_swiglu import clamped_swiglu_backward, clamped_swiglu_forward
from liger_kernel_ascend.ops._common import check_npu_dtype

#: output elements per program (see the module docstring)
MAX_TILE = 1024


class ClampedSwiGLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, alpha: float, limit: float) -> torch.Tensor:
        check_npu_dtype("clamped_swiglu", x.dtype)
        return clamped_swiglu_forward(ctx, x, alpha, limit, max_tile=MAX_TILE)

    @staticmethod
    def backward(ctx: Any, dc: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        return clamped_swiglu_backward(ctx, dc)


__all__ = ["ClampedSwiGLUFunction"]
