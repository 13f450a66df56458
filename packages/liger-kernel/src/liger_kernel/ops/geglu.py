"""GEGLU gate: c = gelu_tanh(a) * b, with
    gelu_tanh(a) = 0.5 * a * (1 + tanh(u)),  u = sqrt(2/pi) * (a + 0.044715 * a**3)

Backward:
    d gelu_tanh / da = 0.5 * (1 + tanh(u)) + 0.5 * a * (1 - tanh(u)**2) * sqrt(2/pi) * (1 + 3 * 0.044715 * a**2)
    da = dc * b * d gelu_tanh / da;  db = dc * gelu_tanh(a)
computed in fp32 (fp64 for fp64 inputs), stored in the input dtype.

A backend may write da and db over a and b during backward (``overwrites``):
in an MLP they are the projections' outputs, dead once the gate's backward ran.
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import DispatchedFunction
from liger_kernel.ops.swiglu import check_gate_pair


class LigerGELUMulFunction(DispatchedFunction):
    op = "geglu"
    backward_reads = ("a", "b")
    overwrites = ("a", "b")

    @staticmethod
    def outputs(a, b):
        return ((a.shape, a.dtype),)

    @staticmethod
    def check(a: torch.Tensor, b: torch.Tensor) -> None:
        check_gate_pair(a, b)
