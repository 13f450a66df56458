"""Qwen2-VL multimodal rotary position embedding (M-RoPE) in pure PyTorch.

The three (temporal, height, width) streams of cos and sin, each
(3, batch or 1, seq, head_dim), are merged into one (batch or 1, seq,
head_dim) table: column j comes from the stream whose ``mrope_section`` holds
j mod (head_dim / 2). Then, with x = [x1, x2] split in halves,
rotate_half(x) = [-x2, x1] and rotate_half^T(y) = [y2, -y1]:
    forward:  x' = x * c + rotate_half(x) * s
    backward: dx = dx' * c + rotate_half^T(dx' * s)
for x in (q, k), c and s unsqueezed at ``unsqueeze_dim`` to broadcast over
heads. Math in fp32 (float64 for float64 inputs); q' and k' in the dtypes of
q and k.
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
