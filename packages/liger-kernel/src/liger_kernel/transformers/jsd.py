"""Generalized Jensen-Shannon divergence loss module, through
:class:`liger_kernel.ops.LigerJSDFunction` (see :mod:`liger_kernel.ops.jsd` for the math).

    JSD_beta(P || Q) = beta * KL(P || M) + (1 - beta) * KL(Q || M),   M = beta * P + (1 - beta) * Q
with the two limits beta = 0, the forward KL(P || Q), and beta = 1, the reverse
KL(Q || P). As the losses of torch.nn, the first argument is the prediction:
``log_q`` are the student's log-probabilities (Q) and ``log_p`` the teacher's (P),
both (rows, V). The loss is the mean over the rows whose ``shift_labels``
entry is not ``ignore_index`` (every row without labels).
"""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops import LigerJSDFunction
from liger_kernel.ops.jsd import check_scalar_options


class LigerJSD(nn.Module):
    def __init__(self, beta: float = 0.5, ignore_index: int = -100) -> None:
        super().__init__()
        check_scalar_options("beta", beta, ignore_index)
        self.beta = beta
        self.ignore_index = ignore_index

    def forward(
        self, log_q: torch.Tensor, log_p: torch.Tensor, shift_labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        return LigerJSDFunction.apply(log_q, log_p, shift_labels, self.beta, self.ignore_index)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, ignore_index={self.ignore_index}"
