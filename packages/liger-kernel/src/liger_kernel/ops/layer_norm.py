"""LayerNorm over the last dimension.

Forward, per row x of width H:
    mean = sum(x) / H;  rstd = 1 / sqrt(sum((x - mean)**2) / H + eps)
    n = (x - mean) * rstd;  y = n * W + B     (B optional: 0 if None)
statistics in fp32, y in x.dtype.

Backward, with g = dy * W:
    dx = rstd * (g - mean(g) - n * mean(g * n))
    dW = sum over rows of dy * n;  dB = sum over rows of dy
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import (
    DispatchedFunction,
    require_real,
    require_rows,
    require_same_device,
    require_shape,
    require_tensor,
)


class LigerLayerNormFunction(DispatchedFunction):
    op = "layer_norm"
    backward_reads = ("X", "W", "B")

    @staticmethod
    def outputs(X, *_):
        return ((X.shape, X.dtype),)

    @staticmethod
    def check(X: torch.Tensor, W: torch.Tensor, B: torch.Tensor | None, eps: float) -> None:
        require_tensor("X", X)
        require_rows("X", X)
        require_real("eps", eps, minimum=0.0)  # 0 allowed, as torch.nn.LayerNorm does
        require_tensor("W", W)
        require_shape("W", W, (X.shape[-1],), "the last dimension of X")
        if B is not None:
            require_tensor("B", B)
            require_shape("B", B, (X.shape[-1],), "the last dimension of X")
        require_same_device("X", {"X": X, "W": W, "B": B})
