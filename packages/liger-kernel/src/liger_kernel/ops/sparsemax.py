"""Sparsemax (Martins & Astudillo, 2016) along dimension ``dim``.

Forward, per row x (the slice along ``dim``): the Euclidean projection of x
onto the probability simplex,
    y = max(x - tau, 0),  tau the one threshold with sum(y) = 1;
with S = {i : x_i > tau} (the support), tau = (sum over S of x - 1) / |S|.
y is shift invariant (x and x - max(x) give the same y; backends take the
shifted row, which keeps large-magnitude rows accurate), and tau >= max(x) - 1.
Computed in fp32 (fp64 for fp64 inputs), y stored in x.dtype. Rounding may put
a computed tau on either side of an input equal to it (common with
half-precision inputs, whose grid is coarse); backends count an input within a
few units in the last place of tau as a tie: y = 0 there, as in exact arithmetic.

Backward, from the saved y (S = {i : y_i > 0}):
    dx_i = dy_i - (sum over S of dy) / |S|   for i in S,   dx_i = 0 elsewhere

``dim`` has no default, as in 0.8.5 (the module :class:`LigerSparsemax` and
the functional ``liger_sparsemax`` default it to -1).
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import DispatchedFunction, require_tensor


class LigerSparsemaxFunction(DispatchedFunction):
    op = "sparsemax"
    backward_reads = (0,)  # y

    @staticmethod
    def outputs(x, *_):
        return ((x.shape, x.dtype),)

    @staticmethod
    def check(x: torch.Tensor, dim: int) -> None:
        require_tensor("x", x)
        if x.dim() == 0:
            raise ValueError("x must have at least one dimension, got a 0-D tensor")
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        if not -x.dim() <= dim < x.dim():
            raise ValueError(f"dim must be in [{-x.dim()}, {x.dim() - 1}] for x of shape {tuple(x.shape)}, got {dim}")
        if x.shape[dim] == 0:
            raise ValueError(f"x has size 0 along dim {dim}: sparsemax of an empty slice has no value")
