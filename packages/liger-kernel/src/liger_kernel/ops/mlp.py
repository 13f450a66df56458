"""The SwiGLU MLP as one Function of its weights (liger-kernel 0.8.5's
``LigerMLPFunction``):

    out = silu(g * (x @ gate_weight.T)) * (x @ up_weight.T) * d  @ down_weight.T

with x (..., hidden), gate_weight and up_weight (intermediate, hidden),
down_weight (hidden, intermediate), and Falcon-H1's multipliers g
(``gate_multiplier``) and d (``down_multiplier``), 1 by default. No biases:
modules with biased projections call their ``nn.Linear``s around
:class:`~liger_kernel.ops.LigerSiLUMulFunction` instead.

A composition, not an op of its own: the projections are torch matmuls and
the gate is the ``swiglu`` op (its math, backends and gradients; see
:mod:`liger_kernel.ops.swiglu`). 0.8.5 fused the gate into the up/gate GEMM
with Triton kernels for Hopper GPUs; its kernel helpers (``gemm_swiglu``,
``swiglu_backward_dGU``, ``swiglu_backward_dI``, ``get_bucket_m``) are not
offered (see ``tests/compat/declined.toml``).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F

from liger_kernel.ops._contract import require_real, require_same_device, require_shape, require_tensor
from liger_kernel.ops.swiglu import LigerSiLUMulFunction


class LigerMLPFunction:
    """``out = down(silu(g * gate(x)) * up(x) * d)`` by weights; see the module docstring."""

    @staticmethod
    def check(
        input: torch.Tensor,
        gate_weight: torch.Tensor,
        up_weight: torch.Tensor,
        down_weight: torch.Tensor,
        gate_multiplier: float = 1.0,
        down_multiplier: float = 1.0,
    ) -> None:
        require_tensor("input", input)
        for name, weight in (("gate_weight", gate_weight), ("up_weight", up_weight), ("down_weight", down_weight)):
            require_tensor(name, weight)
            if weight.dim() != 2:
                raise ValueError(f"{name} must be 2-D, got shape {tuple(weight.shape)}")
            if weight.dtype != input.dtype:
                raise TypeError(f"{name} has dtype {weight.dtype} but input has {input.dtype}")
        if input.dim() == 0:
            raise ValueError("input must have at least one dimension (the last is the hidden size), got a 0-D tensor")
        if gate_weight.shape[1] != input.shape[-1]:
            raise ValueError(
                f"gate_weight has shape {tuple(gate_weight.shape)}; expected (intermediate, {input.shape[-1]}), "
                "the last dimension of input"
            )
        require_shape("up_weight", up_weight, tuple(gate_weight.shape), "the shape of gate_weight")
        require_shape(
            "down_weight", down_weight, (gate_weight.shape[1], gate_weight.shape[0]), "gate_weight's, transposed"
        )
        require_real("gate_multiplier", gate_multiplier)
        require_real("down_multiplier", down_multiplier)
        require_same_device(
            "input", {"input": input, "gate_weight": gate_weight, "up_weight": up_weight, "down_weight": down_weight}
        )

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> torch.Tensor:
        bound = inspect.signature(cls.check).bind(*args, **kwargs)
        bound.apply_defaults()
        cls.check(*bound.args)
        x, gate_weight, up_weight, down_weight, gate_multiplier, down_multiplier = bound.args
        gated = LigerSiLUMulFunction.apply(
            F.linear(x, gate_weight), F.linear(x, up_weight), gate_multiplier, down_multiplier
        )
        return F.linear(gated, down_weight)
