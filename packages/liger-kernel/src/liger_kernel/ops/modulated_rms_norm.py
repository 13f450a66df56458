"""Modulated RMSNorm (adaptive layer norm of diffusion transformers, AdaLN).

Forward, per row x of width H (X flattened to N rows over its last dimension):
    rstd = 1 / sqrt(mean(x**2) + eps);  n = x * rstd
    r    = n * (offset + W)                (r = n without W)
    y    = r * (1 + scale[m]) + shift[m]   (no shift term when shift is None)
r follows :class:`~liger_kernel.ops.LigerRMSNormFunction`'s casting modes ("llama":
rstd in fp32, n rounded to x.dtype before W; "gemma": fp32 throughout; "none":
x.dtype throughout) but is not rounded itself: the modulation runs in fp32 (fp64
for fp64 inputs) and y is rounded once, to X's dtype.

Modulation rows: scale and shift have H last; their leading dimensions, flattened,
are M modulation rows, and row i of X takes row m = i // (N / M). So M must be
the product of a leading run of X's dimensions: M = 1 (shape (H,) or (1, H): one
modulation for every token), M = B for X of shape (B, T, H) (shape (B, H) or
(B, 1, H): one per sample, the AdaLN case), or M = N (one per token). A scale
with as many dimensions as X must be that leading run followed by ones, which is
what torch broadcasting means too; a scale of another shape whose M happens to
divide N (a (1, T, H) scale over (B, T, H), say) is refused, not read as
something it is not. shift has the same M as scale.

Backward, with u = dy * (1 + scale[m]) and g = u * (offset + W):
    dx     = rstd * (g - n * mean(g * n))
    dW     = sum over rows of u * n       (n as W multiplies it: in x.dtype for "llama")
    dscale = sum over the rows of each modulation row of dy * r
    dshift = sum over the rows of each modulation row of dy
Gradients are returned in their inputs' dtypes.

``in_place`` is accepted for compatibility with liger-kernel 0.8.x, where True
let the backward write dx over dy; as for RMSNorm, no backend writes dy here
(dy may be a tensor the caller or another branch of the graph still reads).
"""

from __future__ import annotations

import math

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


def modulation_rows(X: torch.Tensor, name: str, modulation: torch.Tensor) -> int:
    """M, the modulation rows of ``modulation`` (scale or shift) over ``X``,
    under the rule of the module docstring; raises ValueError naming ``name``."""
    width = X.shape[-1]
    lead = tuple(X.shape[:-1])
    shape = tuple(modulation.shape)
    if modulation.dim() == 0 or shape[-1] != width:
        raise ValueError(f"{name} has shape {shape}; its last dimension must be the hidden size {width} of X")
    rows = math.prod(shape[:-1])
    runs = [math.prod(lead[:k]) for k in range(len(lead) + 1)]
    if modulation.dim() == X.dim():
        # X's leading run, then ones: torch broadcasting agrees with the row rule
        for k in range(len(lead) + 1):
            if shape[:-1] == lead[:k] + (1,) * (len(lead) - k):
                return rows
    elif modulation.dim() <= 2 and rows in runs:
        return rows
    expected = ", ".join(f"({r}, {width})" for r in dict.fromkeys(runs))
    raise ValueError(
        f"{name} has shape {shape}, which does not modulate X of shape {tuple(X.shape)}: expected ({width},), "
        f"one of {expected}, or X's shape with trailing leading dimensions set to 1"
    )


class LigerModulatedRMSNormFunction(DispatchedFunction):
    """``y = (1 + scale) * RMSNorm(x) + shift``; see the module docstring."""

    op = "modulated_rms_norm"
    backward_reads = ("X", "W", "scale")

    @staticmethod
    def outputs(X, *_):
        return ((X.shape, X.dtype),)

    @staticmethod
    def check(
        X: torch.Tensor,
        W: torch.Tensor | None,
        scale: torch.Tensor,
        shift: torch.Tensor | None,
        eps: float,
        offset: float = 0.0,
        casting_mode: str = "llama",
        in_place: bool = True,
    ) -> None:
        require_tensor("X", X)
        require_rows("X", X)
        check_norm_scalars(eps, offset)
        require_choice("casting_mode", casting_mode, CASTING_MODES)
        if W is not None:
            require_tensor("W", W)
            require_shape("W", W, (X.shape[-1],), "the last dimension of X")
        require_tensor("scale", scale)
        rows = modulation_rows(X, "scale", scale)
        if shift is not None:
            require_tensor("shift", shift)
            shift_rows = modulation_rows(X, "shift", shift)
            if shift_rows != rows:
                raise ValueError(
                    f"shift has {shift_rows} modulation rows (shape {tuple(shift.shape)}) but scale has {rows} "
                    f"(shape {tuple(scale.shape)}); they must modulate the same rows"
                )
        require_same_device("X", {"X": X, "W": W, "scale": scale, "shift": shift})
