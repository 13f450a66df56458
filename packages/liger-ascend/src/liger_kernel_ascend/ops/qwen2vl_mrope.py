"""Qwen2-VL multimodal rotary position embedding (M-RoPE) on the NPU: the
portable kernel of :mod:`liger_kernel.triton.qwen2vl_mrope` where the chip can
run it (math in :mod:`liger_kernel.ops.qwen2vl_mrope`).

It meets the NPU's grid and UB limits: its grid is ``profile.grid(tokens)``,
one program per vector core here (never above 65535, however long the
sequence), each looping over its tokens; its (heads x head_dim / 2) tiles are
capped by ``profile.max_block``, which the NPU profile sizes to the unified
buffer less its safety margin. Under the strict NPU mock, forward plus
backward of (28 or 64 heads, head_dim 128) and (128 heads, head_dim 256) in
bf16 and fp32 peak at about 50 KiB of live floating-point values.

Its tiles hold several heads; when a head pitch (of q, k or their gradients)
is not a multiple of 32 bytes, the A3 vector cores fault on the 2-D DMA, so
such a call runs on the torch backend (torch_npu's kernels), logged once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from liger_kernel.backends.torch.qwen2vl_mrope import Qwen2VLMRopeFunction as TorchMRopeFunction
from liger_kernel.triton.qwen2vl_mrope import Qwen2VLMRopeFunction as PortableMRopeFunction
from liger_kernel_ascend.ops._common import PITCH_ALIGN_BYTES, check_npu_dtype, log_torch_fallback


def _pitch_faults(unsqueeze_dim: int, *tensors: torch.Tensor) -> bool:
    """Whether a multi-head tile of one of ``tensors`` would have an unaligned head pitch."""
    head_axis = 1 if unsqueeze_dim == 1 else 2
    return any(t.shape[head_axis] > 1 and t.stride(head_axis) * t.element_size() % PITCH_ALIGN_BYTES for t in tensors)


class Qwen2VLMRopeFunction(PortableMRopeFunction):
    """The portable M-RoPE kernel, or the torch backend where its tiles would fault."""

    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mrope_section: Sequence[int],
        unsqueeze_dim: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # the gradients arrive in the outputs' dense layout, which the head pitch of q and k decides
        check_npu_dtype("qwen2vl_mrope", q.dtype)
        ctx.on_torch = _pitch_faults(unsqueeze_dim, q, k, q.contiguous()[:1], k.contiguous()[:1])
        if ctx.on_torch:
            log_torch_fallback("qwen2vl_mrope", "a head pitch is not a multiple of 32 bytes")
            return TorchMRopeFunction.forward(ctx, q, k, cos, sin, mrope_section, unsqueeze_dim)
        return PortableMRopeFunction.forward(ctx, q, k, cos, sin, mrope_section, unsqueeze_dim)

    @staticmethod
    def backward(ctx: Any, dq: torch.Tensor, dk: torch.Tensor) -> tuple[Any, ...]:
        if ctx.on_torch:
            return TorchMRopeFunction.backward(ctx, dq, dk)
        return PortableMRopeFunction.backward(ctx, dq, dk)


__all__ = ["Qwen2VLMRopeFunction"]
