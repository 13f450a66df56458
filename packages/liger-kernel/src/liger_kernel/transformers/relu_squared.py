"""Squared ReLU module (Nemotron's ``relu2`` activation), through
:class:`liger_kernel.ops.LigerReLUSquaredFunction`."""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops import LigerReLUSquaredFunction


class LigerReLUSquared(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LigerReLUSquaredFunction.apply(x)
