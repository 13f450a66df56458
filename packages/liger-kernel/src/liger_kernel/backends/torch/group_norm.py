"""GroupNorm in pure PyTorch (math: :mod:`liger_kernel.ops.group_norm`).

X (N, C, *spatial) is seen as (N, G, K) with K = (C / G) * prod(spatial): one
row per (sample, group). Forward and backward in the compute dtype.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from liger_kernel.backends.torch._common import compute_dtype


def _per_channel(t: torch.Tensor, n_channels: int) -> torch.Tensor:
    """A (C,) parameter shaped (1, C, 1) to broadcast over (N, C, positions)."""
    return t.view(1, n_channels, 1)


def _group_size(X: torch.Tensor, num_groups: int) -> int:
    """K, the values per (sample, group), spelt out: reshape cannot infer it
    (-1) for an empty batch."""
    return X.shape[1] // num_groups * math.prod(X.shape[2:])


class GroupNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        X: torch.Tensor,
        affine_scaling_weight: torch.Tensor,
        affine_shifting_bias: torch.Tensor | None,
        num_channels: int,
        num_groups: int,
        eps: float,
    ) -> torch.Tensor:
        weight, bias = affine_scaling_weight, affine_shifting_bias  # 0.8.5's names in the signature
        batch, group_size = X.shape[0], _group_size(X, num_groups)
        math_dtype = compute_dtype(X, weight, bias)
        groups = X.reshape(batch, num_groups, group_size).to(math_dtype)
        mean = groups.mean(dim=-1, keepdim=True)
        centered = groups - mean
        rstd = torch.rsqrt(centered.pow(2).mean(dim=-1, keepdim=True) + eps)
        normed = (centered * rstd).view(batch, num_channels, group_size * num_groups // num_channels)
        y = normed * _per_channel(weight.to(math_dtype), num_channels)
        if bias is not None:
            y = y + _per_channel(bias.to(math_dtype), num_channels)
        ctx.save_for_backward(X, weight, bias, mean, rstd)
        ctx.num_channels, ctx.num_groups = num_channels, num_groups
        return y.to(X.dtype).view(X.shape)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> tuple[Any, ...]:
        X, weight, bias, mean, rstd = ctx.saved_tensors
        need_dx, need_dw, need_db = ctx.needs_input_grad[:3]
        channels, groups = ctx.num_channels, ctx.num_groups
        batch, group_size = X.shape[0], _group_size(X, groups)
        positions = group_size * groups // channels
        math_dtype = rstd.dtype
        dy = dY.reshape(batch, channels, positions).to(math_dtype)
        normed = ((X.reshape(batch, groups, group_size).to(math_dtype) - mean) * rstd).view(batch, channels, positions)
        dX = dW = dB = None
        if need_dx:
            g = (dy * _per_channel(weight.to(math_dtype), channels)).view(batch, groups, group_size)
            n = normed.view(batch, groups, group_size)
            dx = rstd * (g - g.mean(dim=-1, keepdim=True) - n * (g * n).mean(dim=-1, keepdim=True))
            dX = dx.to(X.dtype).view(X.shape)
        if need_dw:
            dW = (dy * normed).sum(dim=(0, 2)).to(weight.dtype)
        if need_db and bias is not None:
            dB = dy.sum(dim=(0, 2)).to(bias.dtype)
        return dX, dW, dB, None, None, None
