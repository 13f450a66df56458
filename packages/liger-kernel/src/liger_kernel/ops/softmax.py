"""Softmax over the last dimension.

Forward, per row x:
    y = exp(x - max(x)) / sum(exp(x - max(x)))
computed in fp32 (fp64 for fp64 inputs), y stored in x.dtype. An entry of
-inf (a masked score) gets probability 0; a row of -inf only is nan, as in
PyTorch.

Backward, from the saved y:
    dx = y * (dy - sum(dy * y))

The argument is ``input_``, 0.8.5's name (``x=`` is accepted too).
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import DispatchedFunction, require_tensor


class LigerSoftmaxFunction(DispatchedFunction):
    op = "softmax"
    backward_reads = (0,)  # y
    keyword_aliases = (("x", "input_"),)

    @staticmethod
    def outputs(input_):
        return ((input_.shape, input_.dtype),)

    @staticmethod
    def check(input_: torch.Tensor) -> None:
        require_tensor("input_", input_)
        if input_.dim() == 0:
            raise ValueError(
                "input_ must have at least one dimension (softmax runs over the last one), got a 0-D tensor"
            )
        if input_.shape[-1] == 0:
            raise ValueError(
                f"input_ has shape {tuple(input_.shape)}: softmax over an empty last dimension has no value"
            )
