"""RMSNorm.

Forward, per row x of width H:
    rstd = 1 / sqrt(mean(x**2) + eps);  n = x * rstd
    y    = n * (offset + W)
Without W (elementwise_affine=False) y = n and offset has no effect.
casting_mode "llama": rstd in fp32, n rounded to x.dtype, then times
(offset + W) rounded to W's dtype (what a model that stores its weight with the
offset folded in multiplies by); "gemma": all of it in fp32, cast once at the
end; "none": all in x.dtype. The backward uses offset + W unrounded (the two
differ by one rounding of W's dtype).

Backward, with g = dy * (offset + W):
    dx = rstd * (g - n * mean(g * n))
    dW = sum over rows of dy * n     (n as the forward multiplied it by W: in x.dtype for "llama")

row_mode is a kernel hint that backends may ignore. ``in_place`` is accepted
for compatibility with liger-kernel 0.8.x, where True let the backward write
dx over dy; here no backend writes dy, whatever it says: dy may be a tensor
the caller holds (``y.backward(g)`` twice) or one autograd hands to another
branch too (a residual add passes one gradient to both of its inputs), and
writing over it would corrupt that silently. dx costs one buffer of X's size.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.ops._contract import (
    DispatchedFunction,
    require_choice,
    require_real,
    require_rows,
    require_same_device,
    require_shape,
    require_tensor,
)

CASTING_MODES = ("llama", "gemma", "none")


def check_norm_scalars(eps: float, offset: float) -> None:
    """eps may be 0, as torch.nn.RMSNorm allows (only an all-zero row then
    divides by zero), never negative; offset is any finite number."""
    require_real("eps", eps, minimum=0.0)
    require_real("offset", offset)


class LigerRMSNormFunction(DispatchedFunction):
    op = "rms_norm"
    backward_reads = ("X", "W")

    @staticmethod
    def outputs(X, *_):
        return ((X.shape, X.dtype),)

    @staticmethod
    def check(
        X: torch.Tensor,
        W: torch.Tensor | None,
        eps: float,
        offset: float = 0.0,
        casting_mode: str = "llama",
        in_place: bool = True,
        row_mode: Any = None,
    ) -> None:
        require_tensor("X", X)
        require_rows("X", X)
        check_norm_scalars(eps, offset)
        require_choice("casting_mode", casting_mode, CASTING_MODES)
        if W is not None:
            require_tensor("W", W)
            require_shape("W", W, (X.shape[-1],), "the last dimension of X")
            require_same_device("X", {"X": X, "W": W})
