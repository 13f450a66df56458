"""Multimodal rotary position embedding of Qwen2-VL (M-RoPE), rotate-half convention.

cos and sin are (3, batch or 1, seq, head_dim): one table per position
stream (temporal, height, width). ``mrope_section`` = [t, h, w] with
t + h + w = head_dim / 2 splits each half of the head dimension into three
sections; column j takes its cos and sin from stream i(j), the section that
j mod (head_dim / 2) falls in:
    i(j) = 0 if j' < t, 1 if j' < t + h, else 2   (j' = j mod head_dim / 2)
    c[j] = cos[i(j), b, s, j];  s_[j] = sin[i(j), b, s, j]
Then, with x = [x1, x2] split in halves and rotate_half(x) = [-x2, x1]:
    q' = q * c + rotate_half(q) * s_;  k' likewise,
c and s_ broadcast over heads at ``unsqueeze_dim`` (1 for q of shape
(batch, heads, seq, head_dim), 2 for (batch, seq, heads, head_dim)). k may
have fewer heads than q (grouped-query attention).

Backward is the inverse rotation: dq = dq' * c + rotate_half^T(dq' * s_),
with rotate_half^T(y) = [y2, -y1]; cos and sin get no gradient (on the halves
as in :mod:`liger_kernel.ops.rope`, with c and s_ for cos and sin). Computed
in fp32 (fp64 for fp64 inputs); q' and k' in the dtypes of q and k.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from liger_kernel.ops._contract import DispatchedFunction, require_ndim, require_same_device
from liger_kernel.ops.rope import require_rotary_qk

#: temporal, height and width position streams
N_STREAMS = 3


def require_mrope_section(mrope_section: Sequence[int], head_dim: int) -> None:
    """``mrope_section``: three non-negative ints summing to head_dim // 2."""
    if not isinstance(mrope_section, (list, tuple)) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in mrope_section
    ):
        raise TypeError(f"mrope_section must be a list of {N_STREAMS} ints, got {mrope_section!r}")
    if len(mrope_section) != N_STREAMS or any(n < 0 for n in mrope_section):
        raise ValueError(
            f"mrope_section must be {N_STREAMS} non-negative ints (temporal, height, width), got {mrope_section!r}"
        )
    if sum(mrope_section) != head_dim // 2:
        raise ValueError(
            f"mrope_section {list(mrope_section)} sums to {sum(mrope_section)}; "
            f"it must sum to head_dim // 2 = {head_dim // 2}"
        )


class LigerQwen2VLMRopeFunction(DispatchedFunction):
    op = "qwen2vl_mrope"
    backward_reads = ("cos", "sin")

    @staticmethod
    def outputs(q, k, *_):
        return ((q.shape, q.dtype), (k.shape, k.dtype))

    @staticmethod
    def check(
        q: torch.Tensor,
        k: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mrope_section: Sequence[int],
        unsqueeze_dim: int = 1,
    ) -> None:
        head_dim, seq_dim = require_rotary_qk(q, k, cos, sin, unsqueeze_dim)
        require_ndim("cos", cos, (4,))
        if sin.shape != cos.shape:
            raise ValueError(f"sin has shape {tuple(sin.shape)} but cos has {tuple(cos.shape)}")
        batch, seq = q.shape[0], q.shape[seq_dim]
        if (
            cos.shape[0] != N_STREAMS
            or cos.shape[1] not in (1, batch)
            or cos.shape[2] != seq
            or cos.shape[3] != head_dim
        ):
            raise ValueError(
                f"cos has shape {tuple(cos.shape)}; expected ({N_STREAMS}, 1 or {batch}, {seq}, {head_dim}) "
                "(temporal, height and width streams, batch, seq, head_dim)"
            )
        require_mrope_section(mrope_section, head_dim)
        require_same_device("q", {"q": q, "k": k, "cos": cos, "sin": sin})
