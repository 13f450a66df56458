"""Softmax module: softmax over the last dimension, through
:class:`liger_kernel.ops.LigerSoftmaxFunction`."""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops import LigerSoftmaxFunction


class LigerSoftmax(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LigerSoftmaxFunction.apply(x)
