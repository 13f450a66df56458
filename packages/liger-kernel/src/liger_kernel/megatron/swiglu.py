"""Megatron-Core's fused SwiGLU, on :class:`liger_kernel.ops.LigerFusedGateUpSiLUMulFunction`.

Megatron's MLP (and the MoE shared expert), with ``gated_linear_unit=True``,
``activation_func=F.silu`` and ``bias_activation_fusion=True``, calls
``bias_swiglu_impl(y, bias, fp8_input_store, cpu_offload_input)`` on the fc1
output ``y = [gate | up]`` (``[tokens, 2 * ffn]`` or ``[seq, batch, 2 * ffn]``)
and takes back ``silu(gate) * up``. :class:`LigerMegatronSwiGLU` has that call
signature, for a spec that names its activation itself; the monkey patch
(:func:`liger_kernel.megatron.apply_liger_kernel_to_megatron`) replaces
Megatron's ``SwiGLUFunction`` instead.

The op has no bias term and keeps its own saved tensors, so three of Megatron's
options are not this op: a bias (``add_bias_linear=True``), an fp8 copy of y
kept for the backward (``activation_func_fp8_input_store``) and CPU offload of
y (``cpu_offload_input``). Such a call runs ``fallback_impl`` when one was given
(Megatron's own ``bias_swiglu_impl``, logged once per reason), and raises
otherwise: it is never computed some other way silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from liger_kernel.ops import LigerFusedGateUpSiLUMulFunction

logger = logging.getLogger(__name__)


def unsupported_reason(bias: torch.Tensor | None, fp8_input_store: bool, cpu_offload_input: bool) -> str | None:
    """Why this op cannot serve a call with these options, or None when it can."""
    if bias is not None:
        return "a bias (add_bias_linear=True), which the op has no term for"
    if fp8_input_store:
        return "fp8_input_store=True (Megatron keeps an fp8 copy of the input for its own backward)"
    if cpu_offload_input:
        return "cpu_offload_input=True (Megatron offloads the saved input to the CPU)"
    return None


class LigerMegatronSwiGLU(nn.Module):
    """``bias_swiglu_impl(input, bias=None, fp8_input_store=False, cpu_offload_input=False)``.

    Args:
        fallback_impl: what serves the calls the op cannot (see the module
            docstring), called with the same four arguments; None raises there.
        in_place: 0.8.5 let the backward write the gradient over the fc1 output
            with True. Accepted; the gradient of y is a new tensor either way,
            as :class:`liger_kernel.ops.LigerFusedGateUpSiLUMulFunction` states.
    """

    def __init__(self, fallback_impl: Callable[..., torch.Tensor] | None = None, in_place: bool = False) -> None:
        super().__init__()
        if not isinstance(in_place, bool):
            raise TypeError(f"in_place must be a bool, got {type(in_place).__name__} {in_place!r}")
        self.fallback_impl = fallback_impl
        self.in_place = in_place
        self._logged: set[str] = set()

    def forward(
        self,
        input: torch.Tensor,
        bias: torch.Tensor | None = None,
        fp8_input_store: bool = False,
        cpu_offload_input: bool = False,
    ) -> torch.Tensor:
        reason = unsupported_reason(bias, fp8_input_store, cpu_offload_input)
        if reason is not None:
            if self.fallback_impl is None:
                raise NotImplementedError(
                    f"LigerMegatronSwiGLU cannot serve a call with {reason}; pass "
                    "fallback_impl=megatron.core.fusions.fused_bias_swiglu.bias_swiglu_impl to run "
                    "Megatron's own kernel for such calls"
                )
            if reason not in self._logged:
                self._logged.add(reason)
                logger.info("LigerMegatronSwiGLU: %s; running fallback_impl for these calls", reason)
            return self.fallback_impl(input, bias, fp8_input_store, cpu_offload_input)
        if not isinstance(input, torch.Tensor) or input.dim() not in (2, 3):
            shape = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
            raise ValueError(
                f"input must be [tokens, 2 * ffn] or [seq, batch, 2 * ffn] as Megatron's MLP passes it, got {shape}"
            )
        return LigerFusedGateUpSiLUMulFunction.apply(input, self.in_place)
