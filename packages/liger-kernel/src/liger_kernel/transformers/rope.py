"""Rotary position embedding with the signature of Transformers'
``apply_rotary_pos_emb``, through :class:`liger_kernel.ops.LigerRopeFunction`.

    q' = q * cos + rotate_half(q) * sin;  k' likewise

When cos covers fewer dimensions than the head (partial rotary, e.g. Phi-3
configs with ``partial_rotary_factor < 1``) only the leading ``cos.shape[-1]``
dimensions are rotated and the rest pass through, as Transformers does; the
op does it (``rotary_dim``, :mod:`liger_kernel.ops.rope`), without slicing
and concatenating here. ``rotary_dim`` given: cos and sin may also be
``rotary_dim / 2`` wide, their halves not repeated.

The vision towers of Qwen2-VL and its successors rotate with
``apply_rotary_pos_emb_vision`` (q and k (seq, heads, head_dim), cos and sin
(seq, head_dim), fp32 math): :func:`liger_rotary_pos_emb_vision`, through the
same op (:func:`liger_kernel.ops.rope.vision_rope`).
"""

from __future__ import annotations

import torch

from liger_kernel.ops import LigerRopeFunction
from liger_kernel.ops.rope import vision_rope


def liger_rotary_pos_emb(
    q: torch.Tensor,
    k: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    position_ids: torch.Tensor | None = None,
    unsqueeze_dim: int = 1,
    rotary_dim: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    if rotary_dim is None:
        # six arguments, as before rotary_dim: a backend Function of that signature still binds
        return LigerRopeFunction.apply(q, k, cos, sin, position_ids, unsqueeze_dim)
    return LigerRopeFunction.apply(q, k, cos, sin, position_ids, unsqueeze_dim, rotary_dim)


def liger_rotary_pos_emb_gpt_oss(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """GPT-OSS's ``apply_rotary_pos_emb`` (Transformers' ``modeling_gpt_oss``).

    GPT-OSS rotates the whole head by the rotate-half math, but its rotary
    embedding returns cos and sin of width head_dim / 2 (the frequencies once,
    not twice): with x = [x1, x2], x' = [x1 * cos - x2 * sin, x2 * cos + x1 * sin].
    That is the RoPE op with both halves of its tables equal, so cos and sin
    are repeated to the full width (a (batch, seq, head_dim) copy, small next
    to q and k) and go to :class:`liger_kernel.ops.LigerRopeFunction` as they
    are; q and k are (batch, heads, seq, head_dim)."""
    return LigerRopeFunction.apply(q, k, torch.cat((cos, cos), dim=-1), torch.cat((sin, sin), dim=-1), None, 1)


def liger_rotary_pos_emb_vision(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for ``apply_rotary_pos_emb_vision`` of Transformers' Qwen2-VL,
    Qwen2.5-VL, Qwen3-VL (and MoE), Qwen3.5 and GLM-4V (and MoE) vision towers:
    q and k (seq, heads, head_dim), cos and sin (seq, head_dim); returns
    ``(q', k')`` of q's and k's shapes and dtypes, computed in fp32 as there
    (:func:`liger_kernel.ops.rope.vision_rope` states the layout and rounding)."""
    return vision_rope(q, k, cos, sin)
