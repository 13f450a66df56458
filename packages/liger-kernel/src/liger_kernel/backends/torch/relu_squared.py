"""Squared ReLU in pure PyTorch (math: :mod:`liger_kernel.ops.relu_squared`)."""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import compute_dtype


class ReLUSquaredFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, X: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(X)
        return torch.relu(X.to(compute_dtype(X))).square().to(X.dtype)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> torch.Tensor:
        (X,) = ctx.saved_tensors
        math_dtype = compute_dtype(X)
        return (2.0 * torch.relu(X.to(math_dtype)) * dY.to(math_dtype)).to(X.dtype)
