"""Sparsemax module: the projection of x onto the probability simplex along
``dim`` (sparse probabilities), through :class:`liger_kernel.ops.LigerSparsemaxFunction`."""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops import LigerSparsemaxFunction


class LigerSparsemax(nn.Module):
    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LigerSparsemaxFunction.apply(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
