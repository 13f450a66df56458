"""Multi-token attention module: a causal softmax (or sparsemax) over
attention scores followed by a learned 2-D convolution across queries, keys
and heads, through :class:`liger_kernel.ops.LigerMultiTokenAttentionFunction`
(the math is there)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.utils import _pair

from liger_kernel.ops import LigerMultiTokenAttentionFunction


class LigerMultiTokenAttention(nn.Module):
    """Holds the convolution's ``weight`` (out_channels, in_channels / groups,
    kernel_size, kernel_size) and ``bias`` (out_channels,), initialised as
    ``torch.nn.Conv2d`` initialises them; ``forward(scores)`` takes
    (batch, in_channels, L, L) scores and returns (batch, out_channels, L', L')."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups ({groups}) must divide in_channels ({in_channels}) and out_channels ({out_channels})"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.sparse = sparse
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch.nn.Conv2d's initialisation
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return LigerMultiTokenAttentionFunction.apply(
            scores, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups, self.sparse
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
            f"bias={self.bias is not None}, sparse={self.sparse}"
        )
