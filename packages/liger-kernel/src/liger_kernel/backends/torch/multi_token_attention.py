"""Multi-token attention in pure PyTorch (math: :mod:`liger_kernel.ops.multi_token_attention`).

P by the torch backend's own softmax / sparsemax over the masked rows, the
convolution by ``torch.nn.functional.conv2d`` on fp32 (fp64) copies, and its
two gradients by ``torch.nn.grad``. P (in the scores' dtype) is saved for the
backward: softmax's gradient needs P, sparsemax's only its support.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from liger_kernel.backends.torch._common import compute_dtype
from liger_kernel.backends.torch.sparsemax import SparsemaxFunction
from liger_kernel.ops.multi_token_attention import pair


def causal(length: int, device: torch.device) -> torch.Tensor:
    """(L, L) bool, True where key j <= query i."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


class MultiTokenAttentionFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        scores: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        sparse: bool = False,
    ) -> torch.Tensor:
        math_dtype = compute_dtype(scores)
        length = scores.shape[-1]
        masked = scores.to(math_dtype).masked_fill(~causal(length, scores.device), float("-inf"))
        if sparse:
            probs = _sparsemax(masked)
        else:
            probs = torch.softmax(masked, dim=-1)
        probs = probs.to(scores.dtype)
        conv = dict(stride=pair("stride", stride, 1), padding=pair("padding", padding, 0))
        conv.update(dilation=pair("dilation", dilation, 1), groups=groups)
        out = F.conv2d(
            probs.to(math_dtype),
            weight.to(math_dtype),
            None if bias is None else bias.to(math_dtype),
            **conv,
        )
        out = out.masked_fill(~causal(out.shape[-1], out.device), 0.0).to(scores.dtype)
        ctx.save_for_backward(probs, weight)
        ctx.conv, ctx.sparse, ctx.has_bias = conv, sparse, bias is not None
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        probs, weight = ctx.saved_tensors
        math_dtype = compute_dtype(probs)
        grad = grad_out.to(math_dtype).masked_fill(~causal(grad_out.shape[-1], grad_out.device), 0.0)
        p = probs.to(math_dtype)
        grad_scores = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            dp = torch.nn.grad.conv2d_input(p.shape, weight.to(math_dtype), grad, **ctx.conv)
            if ctx.sparse:
                support = p > 0
                mean = (dp * support).sum(-1, keepdim=True) / support.sum(-1, keepdim=True)
                grad_scores = torch.where(support, dp - mean, 0.0)
            else:
                grad_scores = p * (dp - (p * dp).sum(-1, keepdim=True))
            grad_scores = grad_scores.to(probs.dtype)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.nn.grad.conv2d_weight(p, weight.shape, grad, **ctx.conv).to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(dim=(0, 2, 3)).to(weight.dtype)
        return grad_scores, grad_weight, grad_bias, None, None, None, None, None


def _sparsemax(masked: torch.Tensor) -> torch.Tensor:
    """Sparsemax over the last dimension by the torch backend's sparsemax (its tie rule included)."""
    with torch.no_grad():
        return SparsemaxFunction.apply(masked, -1)
