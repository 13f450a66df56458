"""Qwen2-VL multimodal rotary position embedding with the signature of
Transformers' ``apply_multimodal_rotary_pos_emb`` (Qwen2-VL, Qwen2.5-VL),
through :class:`liger_kernel.ops.LigerQwen2VLMRopeFunction`.

cos and sin are (3, batch, seq, head_dim), one table per (temporal, height,
width) position stream; column j of the head takes stream i when
j mod (head_dim / 2) falls in section i of ``mrope_section``; then
    q' = q * cos + rotate_half(q) * sin;  k' likewise.

Transformers 4.x calls ``apply_multimodal_rotary_pos_emb`` from the attention
layers of these models, so a model patch can replace it with
:func:`liger_multimodal_rotary_pos_emb`. Transformers 5.x merges the three
streams in the rotary-embedding module instead and passes (batch, seq,
head_dim) tables to the plain ``apply_rotary_pos_emb``, which
:func:`liger_kernel.transformers.rope.liger_rotary_pos_emb` replaces.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from liger_kernel.ops import LigerQwen2VLMRopeFunction


def liger_multimodal_rotary_pos_emb(
    q: torch.Tensor,
    k: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    mrope_section: Sequence[int],
    unsqueeze_dim: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    return LigerQwen2VLMRopeFunction.apply(q, k, cos, sin, mrope_section, unsqueeze_dim)
