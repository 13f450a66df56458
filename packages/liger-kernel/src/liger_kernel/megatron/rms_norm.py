"""Megatron-Core's RMSNorm slot, on :class:`liger_kernel.ops.LigerRMSNormFunction`.

Megatron builds a norm as ``norm_class(config=..., hidden_size=..., eps=...)``
(its ``WrappedTorchNorm`` / ``FusedLayerNorm`` interface); this module takes the
same arguments. ``y = x * rstd * (offset + weight)`` over the last dimension,
with ``offset = 1`` and the weight initialized to 0 under zero-centered gamma
(``config.layernorm_zero_centered_gamma`` or ``zero_centered_gamma=True``), else
``offset = 0`` and the weight initialized to 1. All of it is computed in fp32
and rounded once to x's dtype (the op's "gemma" casting mode), as
``torch.nn.RMSNorm``, the norm of Megatron's local spec, computes it: in bf16
the two agree bit for bit, where rounding the normalized x before the weight
multiplies it (the "llama" mode) would not.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import nn

from liger_kernel.ops import LigerRMSNormFunction


class LigerMegatronRMSNorm(nn.Module):
    """RMSNorm with Megatron-Core's norm constructor.

    Args:
        config: Megatron's ``TransformerConfig`` (read: ``normalization``, which
            must be "RMSNorm"; ``layernorm_zero_centered_gamma``;
            ``sequence_parallel``, copied onto the weight as Megatron's
            optimizer expects of a norm's weight).
        hidden_size: width of the normalized (last) dimension.
        eps: added to the mean square.
        persist_layer_norm: accepted for Megatron's interface; no effect here.
        zero_centered_gamma: store the weight around 0 and scale by ``1 + weight``.
        normalization: accepted for Megatron's interface; the config decides.
    """

    def __init__(
        self,
        config: Any,
        hidden_size: int,
        eps: float = 1e-5,
        persist_layer_norm: bool = False,
        zero_centered_gamma: bool = False,
        normalization: str = "RMSNorm",
    ) -> None:
        super().__init__()
        configured = getattr(config, "normalization", "RMSNorm")
        if configured != "RMSNorm":
            raise ValueError(
                f"LigerMegatronRMSNorm is an RMSNorm, but config.normalization is {configured!r}; "
                "keep Megatron's own norm for that"
            )
        if isinstance(hidden_size, numbers.Integral):
            shape = (int(hidden_size),)
        else:
            shape = tuple(hidden_size)
        if len(shape) != 1:
            raise ValueError(f"hidden_size must be one width (the last dimension), got {shape}")
        self.config = config
        self.hidden_size = torch.Size(shape)
        self.eps = eps
        self.zero_centered_gamma = bool(zero_centered_gamma or getattr(config, "layernorm_zero_centered_gamma", False))
        self.offset = 1.0 if self.zero_centered_gamma else 0.0
        self.weight = nn.Parameter(torch.empty(self.hidden_size))
        self.reset_parameters()
        # Megatron's optimizer all-reduces the gradient of a weight so marked
        # across the tensor-parallel ranks under sequence parallelism.
        self.weight.sequence_parallel = bool(getattr(config, "sequence_parallel", False))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.fill_(0.0 if self.zero_centered_gamma else 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LigerRMSNormFunction.apply(x, self.weight, self.eps, self.offset, "gemma", False, None)

    def extra_repr(self) -> str:
        return f"hidden_size={tuple(self.hidden_size)}, eps={self.eps}, zero_centered_gamma={self.zero_centered_gamma}"
