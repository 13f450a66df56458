"""Gated MLPs with a SiLU gate: ``down(silu(gate(x)) * up(x))``, the gate
product through :class:`liger_kernel.ops.LigerSiLUMulFunction`.

Parameter names match the Transformers modules they replace, so checkpoints
and ``state_dict``s load unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from liger_kernel.ops import LigerClampedSwiGLUFunction, LigerSiLUMulFunction

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


def liger_experts_apply_gate(self: nn.Module, gate_up_out: torch.Tensor) -> torch.Tensor:
    """``_apply_gate`` for Transformers' fused MoE experts (Mixtral, Qwen3-MoE):
    ``silu(gate) * up`` of the concatenated [gate; up] projection."""
    gate, up = gate_up_out.chunk(2, dim=-1)
    return LigerSiLUMulFunction.apply(gate, up)


def liger_gpt_oss_experts_apply_gate(self: nn.Module, gate_up: torch.Tensor) -> torch.Tensor:
    """``_apply_gate`` for GPT-OSS's experts: the clamped SwiGLU of the
    interleaved [g0, u0, g1, u1, ...] projection with the module's ``alpha`` and
    ``limit`` (the config's ``swiglu_alpha``, ``swiglu_limit``)."""
    return LigerClampedSwiGLUFunction.apply(gate_up, self.alpha, self.limit)
