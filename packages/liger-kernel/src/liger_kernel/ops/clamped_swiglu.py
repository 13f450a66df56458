"""Clamped SwiGLU gate of GPT-OSS's experts, on the interleaved gate/up projection.

x is (..., 2I) with gate and up interleaved, [g0, u0, g1, u1, ...]; the output
c is (..., I):
    g = x[..., 0::2],  u = x[..., 1::2]
    gc = min(g, limit),  uc = clamp(u, -limit, limit)
    c = (uc + 1) * gc * sigmoid(alpha * gc)

Backward, with s = sigmoid(alpha * gc); the clamps pass the gradient where the
value is inside their range, bounds included, and nothing outside it (as torch
autograd differentiates ``clamp``):
    dg = dc * (uc + 1) * s * (1 + alpha * gc * (1 - s))   where g <= limit, else 0
    du = dc * gc * s                                       where -limit <= u <= limit, else 0
and dx interleaves them as x does. Computed in fp32 (fp64 for fp64 inputs),
stored in the input dtype. alpha and limit are finite reals, limit > 0
(GPT-OSS's configs: swiglu_alpha = 1.702, swiglu_limit = 7.0).

A backend may write dx over x during backward (``overwrites``): in the experts
x is the output of the gate/up projection (plus bias), dead once the gate's
backward ran.
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import DispatchedFunction, require_real, require_tensor


class LigerClampedSwiGLUFunction(DispatchedFunction):
    op = "clamped_swiglu"
    backward_reads = ("x",)
    overwrites = ("x",)

    @staticmethod
    def outputs(x, alpha, limit):
        return (((*x.shape[:-1], x.shape[-1] // 2), x.dtype),)

    @staticmethod
    def check(x: torch.Tensor, alpha: float, limit: float) -> None:
        require_tensor("x", x)
        if x.dim() == 0:
            raise ValueError("x must have at least one dimension (the last is the interleaved gate/up), got 0-D")
        if x.shape[-1] % 2:
            raise ValueError(
                f"x has shape {tuple(x.shape)}: its last dimension interleaves gate and up, so it must be even"
            )
        require_real("alpha", alpha)
        require_real("limit", limit, minimum=0.0, above_minimum=True)
