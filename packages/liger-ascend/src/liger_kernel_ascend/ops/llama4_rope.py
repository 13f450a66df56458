"""Llama 4's complex-form rotary embedding on the NPU: the portable Triton kernel
of :mod:`liger_kernel.triton.llama4_rope` (math: :mod:`liger_kernel.ops.llama4_rope`).

It meets the NPU's limits as it is, sized by the NPU profile: one program per
vector core looping over tokens (never above 65535 programs), tiles of
(heads, head_dim / 2) pairs within the profile's block. What it needs here is
the A3 vector cores' DMA rule: a tile of several heads is a 2-D transfer whose
row pitch is the head stride, and the cores fault when that pitch is not a
multiple of 32 bytes, so such a call takes one head per tile (checked again
in backward for the gradients' layout). fp64 is refused (triton-ascend cannot
compile it); a complex128 freqs_cis is therefore refused too.
Importing this module runs the environment checks of :mod:`liger_kernel_ascend.safety`.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.triton.llama4_rope import llama4_rope_backward, llama4_rope_forward
from liger_kernel_ascend.ops._common import PITCH_ALIGN_BYTES, check_npu_dtype


def _head_cap(*tensors: torch.Tensor) -> int | None:
    """1 when a head pitch (of q, k, their gradients, or the dense outputs) is not 32-byte aligned."""
    for x in tensors:
        dense_pitch = x.shape[-1] * x.element_size()
        if (x.stride(2) * x.element_size()) % PITCH_ALIGN_BYTES or dense_pitch % PITCH_ALIGN_BYTES:
            return 1
    return None


class Llama4RopeFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, q: torch.Tensor, k: torch.Tensor, freqs_cis: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for dtype in (q.dtype, k.dtype, torch.float64 if freqs_cis.dtype == torch.complex128 else freqs_cis.dtype):
            check_npu_dtype("llama4_rope", dtype)
        return llama4_rope_forward(ctx, q, k, freqs_cis, max_block_heads=_head_cap(q, k))

    @staticmethod
    def backward(ctx: Any, dq: torch.Tensor, dk: torch.Tensor) -> tuple[Any, ...]:
        return llama4_rope_backward(ctx, dq, dk, max_block_heads=_head_cap(dq, dk))


__all__ = ["Llama4RopeFunction"]
