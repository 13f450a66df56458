"""Modulated RMSNorm module (AdaLN of diffusion transformers):

    y = (1 + scale) * RMSNorm(x) + shift

computed by :class:`liger_kernel.ops.LigerModulatedRMSNormFunction` (see
:mod:`liger_kernel.ops.modulated_rms_norm` for the casting modes and the shapes
scale and shift may take). The module holds the optional weight and the norm's
options; scale and shift come with each call, from the conditioning.
"""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops import LigerModulatedRMSNormFunction

_INIT = {"ones": torch.ones, "zeros": torch.zeros}


class LigerModulatedRMSNorm(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        eps: float = 1e-6,
        offset: float = 0.0,
        casting_mode: str = "llama",
        init_fn: str = "ones",
        in_place: bool = True,
        elementwise_affine: bool = True,
    ) -> None:
        super().__init__()
        if init_fn not in _INIT:
            raise ValueError(f"init_fn must be one of {tuple(_INIT)}, got {init_fn!r}")
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(_INIT[init_fn](hidden_size))
        else:
            self.register_parameter("weight", None)
        self.variance_epsilon = eps
        self.offset = offset
        self.casting_mode = casting_mode
        self.in_place = in_place

    def forward(
        self, hidden_states: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor | None = None
    ) -> torch.Tensor:
        return LigerModulatedRMSNormFunction.apply(
            hidden_states,
            self.weight,
            scale,
            shift,
            self.variance_epsilon,
            self.offset,
            self.casting_mode,
            self.in_place,
        )

    def extra_repr(self) -> str:
        shape = tuple(self.weight.shape) if self.weight is not None else None
        return (
            f"weight_shape={shape}, eps={self.variance_epsilon}, offset={self.offset}, "
            f"casting_mode={self.casting_mode!r}, in_place={self.in_place}"
        )
