"""Gated MLP with a tanh-GELU gate (Gemma): ``down(gelu_tanh(gate(x)) * up(x))``,
the gate product through :class:`liger_kernel.ops.LigerGELUMulFunction`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from liger_kernel.ops import LigerGELUMulFunction

GELU_TANH_NAMES = ("gelu_pytorch_tanh", "gelu_new", "gelu_fast")


class LigerGEGLUMLP(nn.Module):
    """Drop-in for GemmaMLP, Gemma2MLP and Gemma3MLP.

    The op computes the tanh approximation of GELU, so configs asking for the
    exact "gelu" are refused rather than silently changed.
    """

    def __init__(self, config: Any) -> None:
        super().__init__()
        act = getattr(config, "hidden_activation", None) or getattr(config, "hidden_act", None)
        if act not in GELU_TANH_NAMES:
            raise ValueError(f"the GEGLU MLP needs a tanh-approximated GELU activation, but the config has {act!r}")
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(LigerGELUMulFunction.apply(self.gate_proj(x), self.up_proj(x)))
