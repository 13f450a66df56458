"""Gated MLPs with a SiLU gate: ``down(silu(gate(x)) * up(x))``, the gate
product through :class:`liger_kernel.ops.LigerSiLUMulFunction`.

Parameter names match the Transformers modules they replace, so checkpoints
and ``state_dict``s load unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from liger_kernel.ops import LigerClampedSwiGLUFunction, LigerFusedMoEFunction, LigerSiLUMulFunction

logger = logging.getLogger(__name__)

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


class LigerSwiGLUMLPForMuseGlimmer(LigerSwiGLUMLP):
    """Drop-in for MuseGlimmerTextMLP (gate_proj, up_proj, down_proj; its config
    names the activation ``hidden_activation``)."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)


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


class LigerBlockSparseTop2MLP(nn.Module):
    """Drop-in for the per-expert MLP of Mixtral's older layout
    (``MixtralBlockSparseTop2MLP``): ``w2(silu(w1(x)) * w3(x))``, width
    ``config.intermediate_size``."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        check_silu(config)
        self.ffn_dim = config.intermediate_size
        self.hidden_dim = config.hidden_size
        self.w1 = nn.Linear(self.hidden_dim, self.ffn_dim, bias=False)
        self.w2 = nn.Linear(self.ffn_dim, self.hidden_dim, bias=False)
        self.w3 = nn.Linear(self.hidden_dim, self.ffn_dim, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.w2(LigerSiLUMulFunction.apply(self.w1(hidden_states), self.w3(hidden_states)))


class LigerQwen3MoeSwiGLUMLP(LigerSwiGLUMLP):
    """Drop-in for one expert of Qwen3-MoE's older per-expert layout
    (``Qwen3MoeMLP`` built with the experts' width): as
    :class:`LigerSwiGLUMLP`, its width ``config.moe_intermediate_size`` unless
    given."""

    def __init__(self, config: Any, intermediate_size: int | None = None) -> None:
        width = intermediate_size if intermediate_size is not None else config.moe_intermediate_size
        super().__init__(config, intermediate_size=width)


def _config_value(config: Any, *names: str) -> int:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    raise ValueError(f"the config has none of {', '.join(names)}")


class LigerExperts(nn.Module):
    """Every expert of an MoE layer as two stacked weights, in Transformers'
    fused-experts layout: ``gate_up_proj`` (E, 2I, H) with the gate's rows
    first and ``down_proj`` (E, H, I), so checkpoints load unchanged. The
    forward takes the router's choice, ``(hidden_states (T, H), top_k_index
    (T, K), top_k_weights (T, K))``, and runs
    :class:`liger_kernel.ops.LigerFusedMoEFunction`.

    E is the config's ``num_experts`` (or ``num_local_experts``,
    ``n_routed_experts``), I its ``moe_intermediate_size`` (or
    ``intermediate_size``)."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        check_silu(config)
        self.config = config
        self.num_experts = _config_value(config, "num_experts", "num_local_experts", "n_routed_experts")
        self.hidden_dim = config.hidden_size
        self.intermediate_dim = _config_value(config, "moe_intermediate_size", "intermediate_size")
        self.gate_up_proj = nn.Parameter(torch.empty(self.num_experts, 2 * self.intermediate_dim, self.hidden_dim))
        self.down_proj = nn.Parameter(torch.empty(self.num_experts, self.hidden_dim, self.intermediate_dim))

    def forward(
        self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        x = hidden_states.to(self.gate_up_proj.dtype)
        out = LigerFusedMoEFunction.apply(x, self.gate_up_proj, self.down_proj, top_k_index, top_k_weights)
        return out.to(hidden_states.dtype)


def fused_experts_layout_problem(experts: nn.Module) -> str | None:
    """Why a Transformers fused-experts module (``@use_experts_implementation``)
    is not the computation :class:`LigerFusedMoEFunction` does, or None."""
    flags = {
        "has_gate": (True, "has no gate projection"),
        "has_bias": (False, "has biases"),
        "is_concatenated": (True, "interleaves gate and up columns"),
        "has_post_expert_norm": (False, "normalizes each expert's output"),
        "_is_expert_parallel": (False, "is expert-parallel (its ids include other ranks' experts)"),
    }
    for name, (wanted, problem) in flags.items():
        if bool(getattr(experts, name, wanted)) != wanted:
            return problem
    act = _activation(getattr(experts, "config", None))
    if act not in SILU_NAMES:
        return f"has activation {act!r}, not SiLU"
    gate = type(experts).__dict__.get("_apply_gate")
    if gate is not None and getattr(gate, "__name__", "") not in ("_default_apply_gate", "liger_experts_apply_gate"):
        return "has its own gate (_apply_gate)"
    return None


def liger_experts_forward(stock_forward: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """The ``forward`` that replaces a Transformers fused-experts class's:
    :class:`LigerFusedMoEFunction` over the module's own weights (transposed
    layouts as views, no copy). A module whose layout is another computation
    (see :func:`fused_experts_layout_problem`) runs ``stock_forward``, and the
    reason is logged once per class."""
    told: set[type] = set()

    def forward(
        self: nn.Module, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        problem = fused_experts_layout_problem(self)
        if problem is not None:
            if type(self) not in told:
                told.add(type(self))
                logger.warning("%s %s; its experts run stock", type(self).__name__, problem)
            return stock_forward(self, hidden_states, top_k_index, top_k_weights)
        gate_up, down = self.gate_up_proj, self.down_proj
        if getattr(self, "is_transposed", False):
            gate_up, down = gate_up.transpose(1, 2), down.transpose(1, 2)
        x = hidden_states.to(gate_up.dtype)
        return LigerFusedMoEFunction.apply(x, gate_up, down, top_k_index, top_k_weights).to(hidden_states.dtype)

    forward.__doc__ = liger_experts_forward.__doc__
    return forward


def liger_gpt_oss_experts_apply_gate(self: nn.Module, gate_up: torch.Tensor) -> torch.Tensor:
    """``_apply_gate`` for GPT-OSS's experts: the clamped SwiGLU of the
    interleaved [g0, u0, g1, u1, ...] projection with the module's ``alpha`` and
    ``limit`` (the config's ``swiglu_alpha``, ``swiglu_limit``)."""
    return LigerClampedSwiGLUFunction.apply(gate_up, self.alpha, self.limit)
