"""Gated MLPs over sequence tiles: ``down(act(gate(x)) * up(x))`` computed by
:func:`liger_kernel.ops.apply_tiled_mlp`, so that the activations alive at
once are one tile's (about ``num_shards`` times fewer than the whole
sequence's), at the cost of running the MLP again in the backward.

The gate products go through :class:`liger_kernel.ops.LigerSiLUMulFunction`
and :class:`liger_kernel.ops.LigerGELUMulFunction` (so each backend's gate
kernel runs per tile). The projections have no bias, and parameter names match
the Transformers MLPs (``gate_proj``, ``up_proj``, ``down_proj``).

The GEGLU gate is the tanh approximation of GELU: a config asking for the exact
``"gelu"`` is refused (liger-kernel 0.8.5 accepted it and computed the tanh
form); a config without an activation takes the module's own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from liger_kernel.ops import LigerGELUMulFunction, LigerSiLUMulFunction, apply_tiled_mlp
from liger_kernel.transformers.geglu import GELU_TANH_NAMES
from liger_kernel.transformers.swiglu import SILU_NAMES


class _TiledGatedMLP(nn.Module):
    gate: Any
    activations: tuple[str, ...]

    def __init__(self, config: Any, num_shards: int | None = None) -> None:
        super().__init__()
        act = getattr(config, "hidden_act", None) or getattr(config, "hidden_activation", None)
        if act is not None and act not in self.activations:
            raise ValueError(
                f"{type(self).__name__} needs hidden_act in {self.activations}, but the config has {act!r}"
            )
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.num_shards = num_shards
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)

    @staticmethod
    def _mlp_forward(module: _TiledGatedMLP, x: torch.Tensor) -> torch.Tensor:
        """The untiled MLP on one tile."""
        return module.down_proj(module.gate.apply(module.gate_proj(x), module.up_proj(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, seq, hidden) or (seq, hidden); tiled along seq."""
        return apply_tiled_mlp(self._mlp_forward, self, x, self.num_shards)


class LigerTiledGEGLUMLP(_TiledGatedMLP):
    """``down(gelu_tanh(gate(x)) * up(x))`` over ``num_shards`` sequence tiles
    (None: ceil(seq / hidden))."""

    gate = LigerGELUMulFunction
    activations = GELU_TANH_NAMES

    def __init__(self, config: Any, num_shards: int | None = None) -> None:
        super().__init__(config, num_shards)


class LigerTiledSwiGLUMLP(_TiledGatedMLP):
    """``down(silu(gate(x)) * up(x))`` over ``num_shards`` sequence tiles
    (None: ceil(seq / hidden))."""

    gate = LigerSiLUMulFunction
    activations = SILU_NAMES

    def __init__(self, config: Any, num_shards: int | None = None) -> None:
        super().__init__(config, num_shards)
