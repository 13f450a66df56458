"""SwiGLU gate: c = silu(a) * b, with silu(a) = a * sigmoid(a).

Backward, with s = sigmoid(a):
    da = dc * b * s * (1 + a * (1 - s))
    db = dc * a * s
computed in fp32 (fp64 for fp64 inputs), stored in the input dtype.

A backend may write da and db over a and b during backward (``overwrites``):
in an MLP they are the projections' outputs, dead once the gate's backward ran.
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import DispatchedFunction, require_same_device, require_shape, require_tensor


def check_gate_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    require_tensor("a", a)
    require_tensor("b", b)
    require_shape("b", b, tuple(a.shape), "the shape of a")
    if b.dtype != a.dtype:
        raise TypeError(f"b has dtype {b.dtype} but a has {a.dtype}")
    require_same_device("a", {"a": a, "b": b})


class LigerSiLUMulFunction(DispatchedFunction):
    op = "swiglu"
    backward_reads = ("a", "b")
    overwrites = ("a", "b")

    @staticmethod
    def outputs(a, b):
        return ((a.shape, a.dtype),)

    @staticmethod
    def check(a: torch.Tensor, b: torch.Tensor) -> None:
        check_gate_pair(a, b)
