"""RMSNorm modules that drop in for the Hugging Face ones.

    y = x / sqrt(mean(x**2) + eps) * (offset + weight)

computed by :class:`liger_kernel.ops.LigerRMSNormFunction` (see its docstring
for the casting modes). The family variants only change defaults: Gemma keeps
``weight`` zero-centred (offset 1, all math in fp32), OLMo-2 multiplies by the
weight before casting back (casting "gemma", offset 0).

``in_place=True`` lets a backend overwrite the incoming gradient with dx. That
is only safe when nothing else reads that gradient, so norms whose output feeds
a residual add directly (Gemma-2/3 and OLMo-2 post-norms) use ``in_place=False``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from liger_kernel.ops import LigerRMSNormFunction

_INIT = {"ones": torch.ones, "zeros": torch.zeros}


class LigerRMSNorm(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        eps: float = 1e-6,
        offset: float = 0.0,
        casting_mode: str = "llama",
        init_fn: str = "ones",
        in_place: bool = True,
        row_mode: Any = None,
        elementwise_affine: bool = True,
    ) -> None:
        super().__init__()
        if init_fn not in _INIT:
            raise ValueError(f"init_fn must be one of {tuple(_INIT)}, got {init_fn!r}")
        self.weight = nn.Parameter(_INIT[init_fn](hidden_size)) if elementwise_affine else None
        self.variance_epsilon = eps
        self.offset = offset
        self.casting_mode = casting_mode
        self.in_place = in_place
        self.row_mode = row_mode

    @property
    def eps(self) -> float:
        """Gemma-style name of :attr:`variance_epsilon`."""
        return self.variance_epsilon

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return LigerRMSNormFunction.apply(
            hidden_states,
            self.weight,
            self.variance_epsilon,
            self.offset,
            self.casting_mode,
            self.in_place,
            self.row_mode,
        )

    def extra_repr(self) -> str:
        shape = tuple(self.weight.shape) if self.weight is not None else None
        return (
            f"{shape}, eps={self.variance_epsilon}, offset={self.offset}, "
            f"casting_mode={self.casting_mode!r}, in_place={self.in_place}"
        )


class LigerRMSNormForGemma(LigerRMSNorm):
    """Gemma: ``(1 + weight)``, weight initialised to zeros, fp32 throughout."""

    def __init__(self, dim: int, eps: float = 1e-6, in_place: bool = True) -> None:
        super().__init__(dim, eps, offset=1.0, casting_mode="gemma", init_fn="zeros", in_place=in_place)


class LigerRMSNormForGemma2(LigerRMSNormForGemma):
    """Gemma-2/3: as Gemma, but post-norms feed residual adds, so never in place."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__(dim, eps, in_place=False)


class LigerRMSNormForOlmo2(LigerRMSNorm):
    """OLMo-2: ``(weight * x_normed)`` cast once at the end; post-norms, so not in place."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__(hidden_size, eps, offset=0.0, casting_mode="gemma", in_place=False)
