"""MoE SwiGLU experts on the NPU: the portable grouped-GEMM kernels of
:mod:`liger_kernel.triton.fused_moe` where the chip can run them (math:
:mod:`liger_kernel.ops.fused_moe`).

Their operand tiles are 2-D loads of whole rows (tokens' hidden states, the
experts' weight rows, the [g; u] pre-activations), and the A3 vector cores
fault on a row pitch that is not a multiple of 32 bytes. A call whose hidden or
intermediate size gives such a pitch (for 16-bit values, a size that is not a
multiple of 16) runs on the torch backend, whose matrix products are torch_npu's
cube-unit kernels, and says so once. Weights in a transposed layout are read
along their contiguous dimension by the portable kernels, so any stride order
is served.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch.fused_moe import FusedMoEFunction as TorchFusedMoEFunction
from liger_kernel.triton.fused_moe import FusedMoEFunction as PortableFusedMoEFunction
from liger_kernel_ascend.ops._common import PITCH_ALIGN_BYTES, check_npu_dtype, log_torch_fallback


def _pitch_problem(x: torch.Tensor, inter: int) -> str | None:
    element = x.element_size()
    for name, width in (("hidden", x.shape[1]), ("intermediate", inter)):
        if width * element % PITCH_ALIGN_BYTES:
            return f"{name} size {width} gives {width * element}-byte rows, not a multiple of {PITCH_ALIGN_BYTES}"
    return None


class FusedMoEFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        gate_up_proj: torch.Tensor,
        down_proj: torch.Tensor,
        top_k_index: torch.Tensor,
        top_k_weights: torch.Tensor,
    ) -> torch.Tensor:
        check_npu_dtype("fused_moe", x.dtype)
        problem = _pitch_problem(x, down_proj.shape[2])
        if problem is not None:
            log_torch_fallback("fused_moe", problem)
        ctx.implementation = PortableFusedMoEFunction if problem is None else TorchFusedMoEFunction
        return ctx.implementation.forward(ctx, x, gate_up_proj, down_proj, top_k_index, top_k_weights)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[Any, ...]:
        return ctx.implementation.backward(ctx, dy)


__all__ = ["FusedMoEFunction"]
