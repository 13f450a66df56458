"""Gated MLPs with a SiLU gate: ``down(silu(gate(x)) * up(x))``, the gate
product through :class:`liger_kernel.ops.LigerSiLUMulFunction`.

Parameter names match the Transformers modules they replace, so checkpoints
and ``state_dict``s load unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from liger_kernel.ops import LigerSiLUMulFunction

SILU_NAMES = ("silu", "swish")


def _activation(config: Any) -> str:
    return getattr(config, "hidden_act", None) or getattr(config, "hidden_activation", None) or "silu"


def check_silu(config: Any) -> None:
    act = _activation(config)
    if act not in SILU_NAMES:
        raise ValueError(f"the SwiGLU MLP needs hidden_act 'silu' (or 'swish'), but the config has {act!r}")


class LigerSwiGLUMLP(nn.Module):
    """Drop-in for LlamaMLP, MistralMLP, Qwen2MLP, ... (gate_proj, up_proj, down_proj)."""

    def __init__(self, config: Any, intermediate_size: int | None = None) -> None:
        super().__init__()
        check_silu(config)
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size if intermediate_size is None else intermediate_size
        bias = bool(getattr(config, "mlp_bias", False))
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=bias)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=bias)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(LigerSiLUMulFunction.apply(self.gate_proj(x), self.up_proj(x)))


class LigerHunyuanV1SwiGLUMLP(LigerSwiGLUMLP):
    """Drop-in for HunYuanDenseV1MLP, whose constructor also takes the layer
    index and whether it is a shared-experts MLP (kept as attributes; the
    width is ``config.intermediate_size`` either way, as the stock module's)."""

    def __init__(self, config: Any, layer_idx: int | None = None, is_shared_mlp: bool = False) -> None:
        super().__init__(config)
        self.layer_idx = layer_idx
        self.is_shared_mlp = is_shared_mlp


class LigerPhi3SwiGLUMLP(nn.Module):
    """Drop-in for Phi3MLP (and Glm4MLP), whose gate and up projections are one
    fused ``gate_up_proj`` of width 2 * intermediate_size (gate first)."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        check_silu(config)
        self.config = config
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(LigerSiLUMulFunction.apply(gate, up))


class LigerFalconH1SwiGLUMLP(LigerSwiGLUMLP):
    """Drop-in for FalconH1MLP:
    ``down_proj(up_proj(x) * silu(gate_proj(x) * g)) * d``, ``(g, d) = config.mlp_multipliers``.

    Both multipliers go to the gate op (:mod:`liger_kernel.ops.swiglu`); d
    moves before ``down_proj``, which is linear, only when it has no bias
    (``config.mlp_bias`` False, Falcon-H1's default), and is applied after it
    otherwise."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        gate_multiplier, down_multiplier = config.mlp_multipliers
        self.gate_multiplier = float(gate_multiplier)
        self.down_multiplier = float(down_multiplier)
        self.fold_down_multiplier = not getattr(config, "mlp_bias", False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fold_down_multiplier:
            gated = LigerSiLUMulFunction.apply(
                self.gate_proj(x), self.up_proj(x), self.gate_multiplier, self.down_multiplier
            )
            return self.down_proj(gated)
        gated = LigerSiLUMulFunction.apply(self.gate_proj(x), self.up_proj(x), self.gate_multiplier, 1.0)
        return self.down_proj(gated) * self.down_multiplier


def liger_experts_apply_gate(self: nn.Module, gate_up_out: torch.Tensor) -> torch.Tensor:
    """``_apply_gate`` for Transformers' fused MoE experts (Mixtral, Qwen3-MoE):
    ``silu(gate) * up`` of the concatenated [gate; up] projection."""
    gate, up = gate_up_out.chunk(2, dim=-1)
    return LigerSiLUMulFunction.apply(gate, up)
