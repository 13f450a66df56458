"""GroupNorm over (batch, channels, *spatial) inputs.

The C channels are split into G groups of C / G consecutive channels; the
statistics of one (sample, group) pair are taken over that group's channels and
all spatial positions together (the spatial dimensions are flattened, and there
may be none). Forward, per sample and group, over its K = (C / G) * prod(spatial)
values x:
    mean = sum(x) / K;  rstd = 1 / sqrt(sum((x - mean)**2) / K + eps)
    n = (x - mean) * rstd;  y = n * weight[c] + bias[c]     (c: the value's channel)
statistics in fp32 (fp64 for fp64 input), y in x.dtype; bias may be None.
weight and bias are the arguments ``affine_scaling_weight`` and
``affine_shifting_bias`` (0.8.5's names; ``weight=`` and ``bias=`` are accepted too).

Backward, per sample and group, with g = dy * weight[c]:
    dx = rstd * (g - mean(g) - n * mean(g * n))      (means over the K values)
    dweight[c] = sum over samples and positions of dy * n
    dbias[c] = sum over samples and positions of dy
"""

from __future__ import annotations

import math

import torch

from liger_kernel.ops._contract import (
    DispatchedFunction,
    require_real,
    require_same_device,
    require_shape,
    require_tensor,
)


def _require_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be positive, got {value}")


class LigerGroupNormFunction(DispatchedFunction):
    op = "group_norm"
    backward_reads = ("X", "affine_scaling_weight", "affine_shifting_bias")
    keyword_aliases = (("weight", "affine_scaling_weight"), ("bias", "affine_shifting_bias"))

    @staticmethod
    def outputs(X, *_):
        return ((X.shape, X.dtype),)

    @staticmethod
    def check(
        X: torch.Tensor,
        affine_scaling_weight: torch.Tensor,
        affine_shifting_bias: torch.Tensor | None,
        num_channels: int,
        num_groups: int,
        eps: float,
    ) -> None:
        require_tensor("X", X)
        if X.dim() < 2:
            raise ValueError(f"X must be (batch, channels, *spatial), at least 2-D; got shape {tuple(X.shape)}")
        _require_positive_int("num_channels", num_channels)
        _require_positive_int("num_groups", num_groups)
        require_real("eps", eps, minimum=0.0)  # 0 allowed, as torch.nn.GroupNorm does
        if X.dim() > 2 and math.prod(X.shape[2:]) == 0:
            raise ValueError(
                f"X has shape {tuple(X.shape)}: no spatial positions, so each group's statistics "
                "are a mean over no values"
            )
        if X.shape[1] != num_channels:
            raise ValueError(f"num_channels is {num_channels} but X has {X.shape[1]} channels (X.shape[1])")
        if num_channels % num_groups != 0:
            raise ValueError(f"num_groups ({num_groups}) must divide num_channels ({num_channels})")
        weight, bias = affine_scaling_weight, affine_shifting_bias
        require_tensor("affine_scaling_weight", weight)
        require_shape("affine_scaling_weight", weight, (num_channels,), "num_channels")
        if bias is not None:
            require_tensor("affine_shifting_bias", bias)
            require_shape("affine_shifting_bias", bias, (num_channels,), "num_channels")
        require_same_device("X", {"X": X, "affine_scaling_weight": weight, "affine_shifting_bias": bias})
