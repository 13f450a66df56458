"""SwiGLU MLPs through :class:`liger_kernel.ops.LigerMLPFunction` (liger-kernel
0.8.5's ``liger_kernel.transformers.mlp``): the module calls the Function with
its projections' weights, so the projections must be bias-free ``nn.Linear``
weights. For MLPs with biased or wrapped (LoRA, quantized) projections use
:class:`liger_kernel.transformers.swiglu.LigerSwiGLUMLP` and
:class:`~liger_kernel.transformers.swiglu.LigerFalconH1SwiGLUMLP`, which call
the projections; those are what the model patches install.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from liger_kernel.ops import LigerMLPFunction
from liger_kernel.transformers.swiglu import check_silu


def _check_no_bias(config: Any, cls: str) -> None:
    if getattr(config, "mlp_bias", False):
        raise ValueError(
            f"{cls} computes from the projections' weights only, and the config has mlp_bias=True; "
            "use liger_kernel.transformers.swiglu.LigerSwiGLUMLP / LigerFalconH1SwiGLUMLP, which keep the biases"
        )


class LigerMLP(nn.Module):
    """``down_proj(silu(gate_proj(x)) * up_proj(x))``, bias-free, by :class:`LigerMLPFunction`."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        check_silu(config)
        _check_no_bias(config, type(self).__name__)
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)
        self.gate_multiplier = 1.0
        self.down_multiplier = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LigerMLPFunction.apply(
            x,
            self.gate_proj.weight,
            self.up_proj.weight,
            self.down_proj.weight,
            self.gate_multiplier,
            self.down_multiplier,
        )


class LigerFalconH1MLP(LigerMLP):
    """Falcon-H1's MLP, ``down_proj(silu(gate_proj(x) * g) * up_proj(x)) * d``
    with ``(g, d) = config.mlp_multipliers``, bias-free, by :class:`LigerMLPFunction`."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        gate_multiplier, down_multiplier = config.mlp_multipliers
        self.gate_multiplier = float(gate_multiplier)
        self.down_multiplier = float(down_multiplier)
