"""GroupNorm module: per (sample, group) statistics over the group's channels
and all spatial positions, then a per-channel affine,

    y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c]

through :class:`liger_kernel.ops.LigerGroupNormFunction`. Input is
(batch, num_channels, *spatial), as for ``torch.nn.GroupNorm``.
"""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops import LigerGroupNormFunction

_INIT = {"ones": torch.ones, "zeros": torch.zeros}


class LigerGroupNorm(nn.Module):
    def __init__(
        self, num_channels: int, num_groups: int, eps: float = 1e-6, bias: bool = False, init_fn: str = "ones"
    ) -> None:
        super().__init__()
        if init_fn not in _INIT:
            raise ValueError(f"init_fn must be one of {tuple(_INIT)}, got {init_fn!r}")
        if num_groups < 1 or num_channels % num_groups != 0:
            raise ValueError(f"num_groups ({num_groups}) must divide num_channels ({num_channels})")
        self.num_channels = num_channels
        self.num_groups = num_groups
        self.eps = eps
        self.weight = nn.Parameter(_INIT[init_fn](num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels)) if bias else None
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return LigerGroupNormFunction.apply(
            hidden_states, self.weight, self.bias, self.num_channels, self.num_groups, self.variance_epsilon
        )

    def extra_repr(self) -> str:
        return (
            f"num_channels={self.num_channels}, num_groups={self.num_groups}, eps={self.variance_epsilon}, "
            f"bias={self.bias is not None}"
        )
