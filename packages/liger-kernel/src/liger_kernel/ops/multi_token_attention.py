"""Multi-token attention (Golovneva et al., 2025, arXiv:2504.00927): a 2-D
convolution over causal attention probabilities, mixing neighbouring queries,
keys and heads.

Input ``scores`` (B, C_in, L, L): per batch and channel (head), the
pre-softmax scores of query i against key j. ``weight`` (C_out, C_in/groups,
KH, KW) and ``bias`` (C_out,) or None are a ``torch.nn.Conv2d``'s; ``stride``,
``padding`` and ``dilation`` are ints or (height, width) pairs, as there.

Forward:
    A[b, c, i, j] = scores[b, c, i, j] if j <= i else -inf    (causal mask)
    P[b, c, i, :] = softmax(A[b, c, i, :])     (sparse=False)
                  = sparsemax(A[b, c, i, :])   (sparse=True; the math, ties
                                                included, of liger_kernel.ops.sparsemax)
    C = conv2d(P, weight, bias, stride, padding, dilation, groups)
    out[b, o, i, j] = C[b, o, i, j] if j <= i else 0
P is computed in fp32 (fp64 for fp64 inputs) and rounded to ``scores.dtype``
(what the convolution reads and the backward saves); the convolution
accumulates in fp32 (fp64) and out is rounded to ``scores.dtype``. Every row i
holds at least its diagonal key, so no row is empty. The convolution must map
L x L onto a square output (Lo x Lo), on which the causal mask is applied.

Backward, with G = grad_out masked like out (G = 0 where j > i):
    dP      = the gradient of conv2d with respect to its input, at G
    dweight = the gradient of conv2d with respect to its weight, at (P, G)
    dbias   = sum of G over (b, i, j)
    dscores = P * (dP - sum_j P * dP)                         (softmax)
            = dP - mean of dP over S on S, 0 elsewhere        (sparsemax, S = {P > 0})
dscores is 0 wherever j > i.

Differences from liger-kernel 0.8.5, whose call and defaults this keeps: its
mask is -1e9 rather than -inf (the same P for every score above -1e9); its
sparse path takes fp32 scores only (here every float dtype); and its backward
returns the input gradient of a strided convolution only when the shapes line
up (here always the exact gradient).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from liger_kernel.ops._contract import DispatchedFunction, require_int, require_same_device, require_tensor


def pair(name: str, value: int | Sequence[int], minimum: int) -> tuple[int, int]:
    """``value`` as a (height, width) pair of ints, each at least ``minimum``."""
    values = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(values, (tuple, list, torch.Size)) or len(values) != 2:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    for item in values:
        require_int(name, item)
        if item < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(values[0]), int(values[1])


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """The length of a convolution's output along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def output_length(scores: torch.Tensor, weight: torch.Tensor, stride, padding, dilation) -> int:
    """Lo of the (B, C_out, Lo, Lo) output; raises when the convolution's output is not square."""
    length = scores.shape[-1]
    (sh, sw), (ph, pw), (dh, dw) = pair("stride", stride, 1), pair("padding", padding, 0), pair("dilation", dilation, 1)
    height = conv_output_size(length, weight.shape[2], sh, ph, dh)
    width = conv_output_size(length, weight.shape[3], sw, pw, dw)
    if height != width or height < 1:
        raise ValueError(
            f"the convolution (kernel {tuple(weight.shape[2:])}, stride {stride}, padding {padding}, "
            f"dilation {dilation}) maps the {length} x {length} scores to {height} x {width}; the causal "
            "output mask needs a square, non-empty output: adjust padding"
        )
    return height


#: the convolution's pair arguments, in call order, with their least value
GEOMETRY = (("stride", 1), ("padding", 0), ("dilation", 1))


class LigerMultiTokenAttentionFunction(DispatchedFunction):
    op = "multi_token_attention"
    backward_reads = ("weight",)

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        # stride, padding and dilation reach backends (and the operator's int[]
        # arguments) as (height, width) pairs, whichever form the caller used
        args = cls._bind(args, kwargs)
        geometry = tuple(pair(name, value, minimum) for (name, minimum), value in zip(GEOMETRY, args[3:6]))
        return super().apply(*args[:3], *geometry, *args[6:])

    @staticmethod
    def outputs(scores, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, sparse=False):
        length = output_length(scores, weight, stride, padding, dilation)
        return (((scores.shape[0], weight.shape[0], length, length), scores.dtype),)

    @staticmethod
    def check(
        scores: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        stride: Sequence[int] = 1,
        padding: Sequence[int] = 0,
        dilation: Sequence[int] = 1,
        groups: int = 1,
        sparse: bool = False,
    ) -> None:
        require_tensor("scores", scores)
        require_tensor("weight", weight)
        if bias is not None:
            require_tensor("bias", bias)
        require_same_device("scores", {"scores": scores, "weight": weight, "bias": bias})
        if scores.dim() != 4 or scores.shape[2] != scores.shape[3]:
            raise ValueError(f"scores must be (batch, channels, L, L), got shape {tuple(scores.shape)}")
        if scores.shape[2] == 0:
            raise ValueError("scores has L = 0: there is no query to attend from")
        if weight.dim() != 4 or 0 in weight.shape:
            raise ValueError(
                f"weight must be a non-empty (out_channels, in_channels / groups, KH, KW), got {tuple(weight.shape)}"
            )
        for name, tensor in (("weight", weight), ("bias", bias)):
            if tensor is not None and tensor.dtype != scores.dtype:
                raise TypeError(f"{name} has dtype {tensor.dtype}; it must match scores' dtype {scores.dtype}")
        require_int("groups", groups)
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        channels, out_channels = scores.shape[1], weight.shape[0]
        if channels % groups or out_channels % groups:
            raise ValueError(
                f"groups ({groups}) must divide both the channels of scores ({channels}) "
                f"and weight's out_channels ({out_channels})"
            )
        if weight.shape[1] * groups != channels:
            raise ValueError(
                f"weight has shape {tuple(weight.shape)}: its in_channels / groups must be {channels // groups} "
                f"for scores with {channels} channels and groups={groups}"
            )
        if bias is not None and tuple(bias.shape) != (out_channels,):
            raise ValueError(f"bias has shape {tuple(bias.shape)}; expected ({out_channels},) (weight's out_channels)")
        if not isinstance(sparse, bool):
            raise TypeError(f"sparse must be a bool, got {type(sparse).__name__}")
        output_length(scores, weight, stride, padding, dilation)
