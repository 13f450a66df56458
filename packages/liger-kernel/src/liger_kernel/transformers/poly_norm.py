"""PolyNorm activation (PolyCom), through :class:`liger_kernel.ops.LigerPolyNormFunction`:

    y = weight[0] * norm(x**3) + weight[1] * norm(x**2) + weight[2] * norm(x) + bias
    norm(u) = u / sqrt(mean(u**2 over the last dimension) + eps)

Initialised as the PolyCom reference: each weight 1/3, bias 0 (shape (1,)).

``in_place=True`` lets a backend overwrite the incoming gradient with dx. That
is only safe when nothing else reads that gradient; pass ``in_place=False``
where the output also feeds another consumer (e.g. a residual add).
"""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops import LigerPolyNormFunction


class LigerPolyNorm(nn.Module):
    def __init__(self, eps: float = 1e-6, in_place: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((3,), 1.0 / 3.0))
        self.bias = nn.Parameter(torch.zeros(1))
        self.variance_epsilon = eps
        self.in_place = in_place

    @property
    def eps(self) -> float:
        return self.variance_epsilon

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return LigerPolyNormFunction.apply(hidden_states, self.weight, self.bias, self.variance_epsilon, self.in_place)

    def extra_repr(self) -> str:
        return f"eps={self.variance_epsilon}, in_place={self.in_place}"
