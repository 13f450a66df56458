"""Dynamic Tanh module: y = gamma * tanh(alpha * x) + beta over the last
dimension, a normalization-free stand-in for LayerNorm, through
:class:`liger_kernel.ops.LigerDyTFunction`."""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops import LigerDyTFunction


class LigerDyT(nn.Module):
    """Parameters: ``alpha`` (1,) set to ``init_alpha``, ``gamma`` (hidden_size,)
    ones, and ``beta`` (hidden_size,) zeros, or None when ``beta=False``."""

    def __init__(self, hidden_size: int, beta: bool = True, init_alpha: float = 0.5) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.init_alpha = init_alpha
        self.alpha = nn.Parameter(torch.full((1,), float(init_alpha)))
        self.gamma = nn.Parameter(torch.ones(hidden_size))
        self.beta = nn.Parameter(torch.zeros(hidden_size)) if beta else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LigerDyTFunction.apply(x, self.alpha, self.gamma, self.beta)

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, init_alpha={self.init_alpha}, beta={self.beta is not None}"
