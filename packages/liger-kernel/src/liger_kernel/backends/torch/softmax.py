"""Softmax over the last dimension, in pure PyTorch
(math: :mod:`liger_kernel.ops.softmax`); y is saved for the backward."""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import compute_dtype


class SoftmaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, input_: torch.Tensor) -> torch.Tensor:
        x = input_  # 0.8.5's name in the signature
        values = x.to(compute_dtype(x))
        exponentials = torch.exp(values - values.amax(dim=-1, keepdim=True))
        y = (exponentials / exponentials.sum(dim=-1, keepdim=True)).to(x.dtype)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        math_dtype = compute_dtype(y)
        probabilities = y.to(math_dtype)
        upstream = dy.to(math_dtype)
        dx = probabilities * (upstream - (upstream * probabilities).sum(dim=-1, keepdim=True))
        return dx.to(y.dtype)
