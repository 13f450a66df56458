"""Softmax over the last dimension.

Forward, per row x:
    y = exp(x - max(x)) / sum(exp(x - max(x)))
computed in fp32 (fp64 for fp64 inputs), y stored in x.dtype. An entry of
-inf (a masked score) gets probability 0; a row of -inf only is nan, as in
PyTorch.

Backward, from the saved y:
    dx = y * (dy - sum(dy * y))
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import DispatchedFunction, require_tensor


class LigerSoftmaxFunction(DispatchedFunction):
    op = "softmax"
    backward_reads = (0,)  # y

    @staticmethod
    def outputs(x):
        return ((x.shape, x.dtype),)

    @staticmethod
    def check(x: torch.Tensor) -> None:
        require_tensor("x", x)
        if x.dim() == 0:
            raise ValueError("x must have at least one dimension (softmax runs over the last one), got a 0-D tensor")
        if x.shape[-1] == 0:
            raise ValueError(f"x has shape {tuple(x.shape)}: softmax over an empty last dimension has no value")
