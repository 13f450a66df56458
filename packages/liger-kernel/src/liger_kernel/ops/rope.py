"""Rotary position embedding, Hugging Face (rotate-half) convention.

With x = [x1, x2] split in halves of the head dimension and
rotate_half(x) = [-x2, x1]:
    q' = q * cos + rotate_half(q) * sin;  k' likewise.
cos and sin are (batch or 1, seq, head_dim); they are unsqueezed at
``unsqueeze_dim`` to broadcast over heads: 1 for q of shape
(batch, heads, seq, head_dim), 2 for (batch, seq, heads, head_dim). If cos and
sin are 2-D (max_positions, head_dim) then ``position_ids`` (batch, seq) picks
their rows (the first seq rows when it is None); with 3-D cos and sin,
position_ids is ignored, as in Transformers.
An id outside [0, max_positions) is an error (IndexError; see
``require_indices_in_range`` for where it is checked), and where it is not
checked, its position's outputs are NaN: no backend reads outside the table.

Backward is the inverse rotation: dq = dq' * cos + rotate_half^T(dq' * sin),
with rotate_half^T(y) = [y2, -y1]; cos and sin get no gradient. Written on the
halves, with cos = [c1, c2], sin = [s1, s2] and g = dq':
    q' = [q1 * c1 - q2 * s1,  q2 * c2 + q1 * s2]
    dq = [g1 * c1 + g2 * s2,  g2 * c2 - g1 * s1]
Computed in fp32 (fp64 for fp64 inputs); q' and k' in the dtypes of q and k.

Partial rotary (``rotary_dim`` r < head_dim, Phi-3's and GLM's
``partial_rotary_factor``): only the first r entries of each head are
rotated, as above with head_dim read as r (halves of r/2); entries r.. pass
through unchanged, and so do their gradients. cos and sin are r wide, or r/2
wide when their halves are not repeated (GPT-OSS builds them so): then
c1 = c2 = cos and s1 = s2 = sin. ``rotary_dim=None`` is the width of cos and
sin. r must be even and at most head_dim.
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import (
    INDEX_DTYPES,
    DispatchedFunction,
    require_choice,
    require_indices_in_range,
    require_int,
    require_ndim,
    require_same_device,
    require_tensor,
)


def require_rotary_qk(
    q: torch.Tensor,
    k: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    unsqueeze_dim: int,
    even_head_dim: bool = True,
) -> tuple[int, int]:
    """The q, k and layout checks of every rotary op (rope, M-RoPE); returns (head_dim, seq_dim).
    ``even_head_dim=False``: the op checks the width it rotates itself (partial rotary)."""
    require_tensor("q", q)
    require_tensor("k", k)
    require_tensor("cos", cos)
    require_tensor("sin", sin)
    require_ndim("q", q, (4,))
    require_ndim("k", k, (4,))
    require_choice("unsqueeze_dim", unsqueeze_dim, (1, 2))
    head_dim = q.shape[-1]
    if even_head_dim and head_dim % 2:
        raise ValueError(f"q has odd head_dim {head_dim}; rotary embedding needs an even one")
    seq_dim = 2 if unsqueeze_dim == 1 else 1
    if k.shape[-1] != head_dim or k.shape[0] != q.shape[0] or k.shape[seq_dim] != q.shape[seq_dim]:
        raise ValueError(f"k has shape {tuple(k.shape)}, incompatible with q {tuple(q.shape)}")
    return head_dim, seq_dim


def rotary_width(head_dim: int, table_width: int, rotary_dim: int | None) -> int:
    """The checked rotary width r: ``rotary_dim``, or the tables' width when None."""
    if rotary_dim is None:
        if table_width > head_dim:
            raise ValueError(f"cos has last dimension {table_width}; expected at most head_dim {head_dim}")
        if table_width % 2 or table_width == 0:
            raise ValueError(
                f"q is rotated over {table_width} entries of its head_dim {head_dim} (the last dimension of cos); "
                "rotate-half needs an even, positive width"
            )
        return table_width
    require_int("rotary_dim", rotary_dim)
    if rotary_dim % 2 or not 0 < rotary_dim <= head_dim:
        raise ValueError(f"rotary_dim must be even, in [2, head_dim {head_dim}], got {rotary_dim}")
    if table_width not in (rotary_dim, rotary_dim // 2):
        raise ValueError(
            f"cos has last dimension {table_width}; with rotary_dim {rotary_dim} expected {rotary_dim} "
            f"(halves repeated) or {rotary_dim // 2}"
        )
    return rotary_dim


class LigerRopeFunction(DispatchedFunction):
    op = "rope"
    backward_reads = ("cos", "sin", "position_ids")

    @staticmethod
    def outputs(q, k, *_):
        return ((q.shape, q.dtype), (k.shape, k.dtype))

    @staticmethod
    def check(
        q: torch.Tensor,
        k: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        unsqueeze_dim: int = 1,
        rotary_dim: int | None = None,
    ) -> None:
        head_dim, seq_dim = require_rotary_qk(q, k, cos, sin, unsqueeze_dim, even_head_dim=False)
        if cos.shape != sin.shape:
            raise ValueError(f"cos has shape {tuple(cos.shape)} but sin has {tuple(sin.shape)}")
        require_ndim("cos", cos, (2, 3))
        rotary_width(head_dim, cos.shape[-1], rotary_dim)
        if cos.dim() == 3 and (cos.shape[1] != q.shape[seq_dim] or cos.shape[0] not in (1, q.shape[0])):
            raise ValueError(
                f"cos has shape {tuple(cos.shape)}; expected (1 or {q.shape[0]}, {q.shape[seq_dim]}, {cos.shape[-1]})"
            )
        if cos.dim() == 2:
            if position_ids is None:
                if cos.shape[0] < q.shape[seq_dim]:
                    raise ValueError(f"cos has {cos.shape[0]} positions, fewer than seq length {q.shape[seq_dim]}")
            else:
                require_tensor("position_ids", position_ids, INDEX_DTYPES)
                if position_ids.shape[-1] != q.shape[seq_dim]:
                    raise ValueError(
                        f"position_ids has shape {tuple(position_ids.shape)}; expected (batch, {q.shape[seq_dim]})"
                    )
                require_indices_in_range(
                    "position_ids", position_ids, cos.shape[0], f"a row of the {cos.shape[0]}-position cos/sin table"
                )
        require_same_device("q", {"q": q, "k": k, "cos": cos, "sin": sin, "position_ids": position_ids})


def _rounded_to_fp32(x: torch.Tensor) -> torch.Tensor:
    """``x.float()`` where that rounds (float64); the op reads the other dtypes
    as they are and computes in fp32, which gives the same values without a copy."""
    return x.float() if x.dtype == torch.float64 else x


def check_vision_rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """The argument checks of :func:`vision_rope`, in its own layout."""
    for name, value in (("q", q), ("k", k), ("cos", cos), ("sin", sin)):
        require_tensor(name, value)
    require_ndim("q", q, (3,))
    require_ndim("k", k, (3,))
    seq, _, head_dim = q.shape
    if head_dim % 2:
        raise ValueError(f"q has odd head_dim {head_dim}; rotate-half needs an even one")
    if k.shape[0] != seq or k.shape[2] != head_dim:
        raise ValueError(
            f"k has shape {tuple(k.shape)}, incompatible with q {tuple(q.shape)}: both are "
            "(seq, heads, head_dim) with the same seq and head_dim"
        )
    require_ndim("cos", cos, (2,))
    if tuple(cos.shape) != (seq, head_dim):
        raise ValueError(f"cos has shape {tuple(cos.shape)}; expected ({seq}, {head_dim}) (seq, head_dim of q)")
    if sin.shape != cos.shape:
        raise ValueError(f"sin has shape {tuple(sin.shape)} but cos has {tuple(cos.shape)}")
    require_same_device("q", {"q": q, "k": k, "cos": cos, "sin": sin})


def vision_rope(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotate-half rotary embedding of the Qwen2-VL vision towers (Transformers'
    ``apply_rotary_pos_emb_vision`` of Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Qwen3.5,
    GLM-4V and their MoE variants), a layout adapter over :class:`LigerRopeFunction`.

    q is (seq, q_heads, head_dim) and k (seq, k_heads, head_dim), the vision
    tower's packed patches of every image (any strides with a unit one on
    head_dim: the towers slice them from one qkv projection); cos and sin are
    (seq, head_dim), broadcast over heads. The math is the op's above, over
    the whole head (no partial rotary: cos must be head_dim wide), seen as
    q[None] of shape (1, seq, heads, head_dim) with ``unsqueeze_dim=2``: no copy.

    Rounding, as Transformers' function does it: q, k, cos and sin are taken
    to fp32, the rotation is computed in fp32 and q' and k' are rounded once
    to the dtypes of q and k. The op computes in fp32 and reads fp16, bf16 and
    fp32 inputs as they are, which is the same; float64 inputs (which the op
    would keep in fp64) are rounded to fp32 first, as there. Backward is the
    op's, the gradients in the dtypes of q and k; cos and sin get none.
    Bad shapes, dtypes and devices raise ``ValueError``/``TypeError`` naming
    the argument, in this layout.
    """
    check_vision_rope(q, k, cos, sin)
    q_out, k_out = LigerRopeFunction.apply(
        _rounded_to_fp32(q).unsqueeze(0),
        _rounded_to_fp32(k).unsqueeze(0),
        _rounded_to_fp32(cos).unsqueeze(0),
        _rounded_to_fp32(sin).unsqueeze(0),
        None,
        2,
    )
    return q_out.squeeze(0).to(q.dtype), k_out.squeeze(0).to(k.dtype)
