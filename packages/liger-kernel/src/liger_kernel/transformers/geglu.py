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

    def __init__(self, config: Any, intermediate_size: int | None = None) -> None:
        """``intermediate_size`` (default: the config's) is for variants whose layers differ."""
        super().__init__()
        act = getattr(config, "hidden_activation", None) or getattr(config, "hidden_act", None)
        if act not in GELU_TANH_NAMES:
            raise ValueError(f"the GEGLU MLP needs a tanh-approximated GELU activation, but the config has {act!r}")
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size if intermediate_size is None else intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(LigerGELUMulFunction.apply(self.gate_proj(x), self.up_proj(x)))


class LigerGEGLUMLPForGemma4(LigerGEGLUMLP):
    """Drop-in for Gemma-4's text MLP, built as it is: ``(config, layer_idx)``.

    With ``config.use_double_wide_mlp``, the last ``config.num_kv_shared_layers``
    of ``config.num_hidden_layers`` (the layers that share another layer's KV
    cache) have twice ``config.intermediate_size``; every other layer, and any
    layer when ``layer_idx`` is None, has the config's own.
    """

    def __init__(self, config: Any, layer_idx: int | None = None) -> None:
        super().__init__(config, gemma4_intermediate_size(config, layer_idx))
        self.layer_idx = layer_idx


def gemma4_intermediate_size(config: Any, layer_idx: int | None) -> int:
    """The intermediate size of Gemma-4's MLP at ``layer_idx`` (see :class:`LigerGEGLUMLPForGemma4`)."""
    if layer_idx is None or not getattr(config, "use_double_wide_mlp", False):
        return config.intermediate_size
    shared = getattr(config, "num_kv_shared_layers", 0) or 0
    first_shared = getattr(config, "num_hidden_layers", 0) - shared
    return 2 * config.intermediate_size if shared > 0 and layer_idx >= first_shared else config.intermediate_size
