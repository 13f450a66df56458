"""PolyNorm (PolyCom): a learned mix of the RMS-normalized first three powers of x.

Forward, per row x of width H (the last dimension), with
norm(u) = u / sqrt(mean(u**2) + eps) over the row:
    y = W[0] * norm(x**3) + W[1] * norm(x**2) + W[2] * norm(x) + B
W has shape (3,), B is one value (shape () or (1,)). Powers, statistics and y
in fp32 (fp64 for fp64 input), y stored in x.dtype.

Backward, with r_p = 1 / sqrt(mean(x**(2p)) + eps) and n_p = x**p * r_p for
p = 1, 2, 3 (W[3 - p] multiplies n_p):
    dx = sum over p of W[3 - p] * p * x**(p - 1) * r_p * (dy - n_p * mean(dy * n_p))
    dW[3 - p] = sum over rows and columns of dy * n_p
    dB = sum over rows and columns of dy
``in_place`` is accepted for compatibility and never lets a backend write
over dy (see :mod:`liger_kernel.ops.rms_norm`).
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


class LigerPolyNormFunction(DispatchedFunction):
    op = "poly_norm"
    backward_reads = ("X", "W", "B")

    @staticmethod
    def outputs(X, *_):
        return ((X.shape, X.dtype),)

    @staticmethod
    def check(
        X: torch.Tensor,
        W: torch.Tensor,
        B: torch.Tensor,
        eps: float = 1e-6,
        in_place: bool = True,
    ) -> None:
        require_tensor("X", X)
        require_rows("X", X)
        require_real("eps", eps, minimum=0.0)
        require_tensor("W", W)
        require_shape("W", W, (3,), "one weight per power of x")
        require_tensor("B", B)
        if B.dim() > 1 or B.numel() != 1:
            raise ValueError(f"B has shape {tuple(B.shape)}; expected one value, shape () or (1,)")
        require_same_device("X", {"X": X, "W": W, "B": B})
