"""Qwen2-VL multimodal rotary position embedding (M-RoPE) in pure PyTorch
(math: :mod:`liger_kernel.ops.qwen2vl_mrope`).

The three streams of cos and sin are merged into one (batch or 1, seq,
head_dim) table, column by column from the stream its section names; then
the rotation of :mod:`liger_kernel.backends.torch.rope`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from liger_kernel.backends.torch._common import compute_dtype
from liger_kernel.backends.torch.rope import rotate_backward, rotate_forward


def merge_streams(table: torch.Tensor, mrope_section: Sequence[int]) -> torch.Tensor:
    """(3, batch, seq, head_dim) -> (batch, seq, head_dim), each column from its section's stream."""
    # both halves of the head dimension use the same split into sections
    pieces = table.split(list(mrope_section) * 2, dim=-1)
    return torch.cat([piece[index % len(mrope_section)] for index, piece in enumerate(pieces)], dim=-1)


class Qwen2VLMRopeFunction(torch.autograd.Function):
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
        math_dtype = compute_dtype(q, k, cos)
        cos_b = merge_streams(cos.to(math_dtype), mrope_section).unsqueeze(unsqueeze_dim)
        sin_b = merge_streams(sin.to(math_dtype), mrope_section).unsqueeze(unsqueeze_dim)
        return rotate_forward(ctx, q, k, cos_b, sin_b, math_dtype)

    @staticmethod
    def backward(ctx: Any, dq_out: torch.Tensor, dk_out: torch.Tensor) -> tuple[Any, ...]:
        return rotate_backward(ctx, dq_out, dk_out)
