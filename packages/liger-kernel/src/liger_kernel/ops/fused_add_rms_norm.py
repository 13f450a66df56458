"""Residual add fused with RMSNorm.

Forward: S = X + R (in X.dtype); Y = rms_norm(S, W, eps, offset, casting_mode) (see
:mod:`liger_kernel.ops.rms_norm`); returns (Y, S) so the caller keeps the new
residual stream.

Backward: dS = drms_norm(dY) + dS_out (the residual's own gradient);
dX = dR = dS; dW as in RMSNorm.
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import (
    DispatchedFunction,
    require_choice,
    require_rows,
    require_same_device,
    require_shape,
    require_tensor,
)
from liger_kernel.ops.rms_norm import CASTING_MODES, check_norm_scalars


class LigerFusedAddRMSNormFunction(DispatchedFunction):
    op = "fused_add_rms_norm"
    backward_reads = ("W", 1)  # S = X + R, the second output

    @staticmethod
    def outputs(X, *_):
        return ((X.shape, X.dtype), (X.shape, X.dtype))

    @staticmethod
    def check(
        X: torch.Tensor,
        R: torch.Tensor,
        W: torch.Tensor,
        eps: float,
        offset: float = 0.0,
        casting_mode: str = "llama",
        in_place: bool = False,
    ) -> None:
        require_tensor("X", X)
        require_tensor("R", R)
        require_tensor("W", W)
        require_rows("X", X)
        check_norm_scalars(eps, offset)
        require_choice("casting_mode", casting_mode, CASTING_MODES)
        require_shape("R", R, tuple(X.shape), "the shape of X")
        require_shape("W", W, (X.shape[-1],), "the last dimension of X")
        if R.dtype != X.dtype:
            raise TypeError(f"R has dtype {R.dtype} but X has {X.dtype}")
        require_same_device("X", {"X": X, "R": R, "W": W})
