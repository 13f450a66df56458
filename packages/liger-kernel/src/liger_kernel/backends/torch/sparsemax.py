"""Sparsemax along one dimension, in pure PyTorch (math: :mod:`liger_kernel.ops.sparsemax`).

tau by sorting, per row z = x - max(x) (``dim`` moved last):
    sort z descending into s;  c_k = s_1 + ... + s_k
    k* = the largest k with 1 + k * s_k > c_k   (the support size)
    tau = (c_k* - 1) / k*, refined once by the residual:
    tau += (sum over {z > tau} of (z - tau) - 1) / k*
then the contract's tie rule. y is saved for the backward.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import compute_dtype

#: Relative width of a tie with the refined threshold: 16 units in the last
#: place of the math dtype, far below the grid of any half-precision input.
TIE_EPS = {torch.float32: 2.0**-20, torch.float64: 2.0**-49}


class SparsemaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dim: int) -> torch.Tensor:
        moved = x.movedim(dim, -1)
        values = moved.to(compute_dtype(x))
        shifted = values - values.amax(dim=-1, keepdim=True)
        ordered = shifted.sort(dim=-1, descending=True).values
        cumulative = ordered.cumsum(dim=-1)
        ranks = torch.arange(1, ordered.shape[-1] + 1, device=x.device, dtype=ordered.dtype)
        # the condition holds on a prefix of ranks; the largest rank where it holds is the support size
        in_support = 1 + ranks * ordered > cumulative
        support_size = (in_support * ranks).amax(dim=-1, keepdim=True)
        tau = (cumulative.gather(-1, support_size.long() - 1) - 1) / support_size
        # one step of iterative refinement, then values within a few units in
        # the last place of tau count as ties with it (y = 0, as in exact arithmetic)
        residual = torch.where(shifted > tau, shifted - tau, 0.0).sum(dim=-1, keepdim=True) - 1
        tau = tau + residual / support_size
        y = shifted - tau
        tie = TIE_EPS[values.dtype] * (tau.abs() + 16 / support_size)
        y = torch.where(y > tie, y, 0.0).to(x.dtype)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y.movedim(-1, dim)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor, None]:
        (y,) = ctx.saved_tensors
        math_dtype = compute_dtype(y)
        support = y > 0
        upstream = dy.movedim(ctx.dim, -1).to(math_dtype)
        support_mean = (upstream * support).sum(dim=-1, keepdim=True) / support.sum(dim=-1, keepdim=True)
        dx = torch.where(support, upstream - support_mean, 0.0).to(y.dtype)
        return dx.movedim(-1, ctx.dim), None
