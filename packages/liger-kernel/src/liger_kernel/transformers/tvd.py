"""Total variation distance loss module, through
:class:`liger_kernel.ops.LigerTVDLossFunction` (see that op for the math):
0.5 * |p - q| over probabilities p and q, rows whose ``shift_labels`` entry is
``ignore_index`` left out of the loss and of the row count.
"""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops import LigerTVDLossFunction
from liger_kernel.ops.tvd import check_scalar_options


class LigerTVDLoss(nn.Module):
    def __init__(self, reduction: str = "batchmean", ignore_index: int = -100) -> None:
        super().__init__()
        check_scalar_options(reduction, ignore_index)
        self.reduction = reduction
        self.ignore_index = ignore_index

    def forward(self, p: torch.Tensor, q: torch.Tensor, shift_labels: torch.Tensor | None = None) -> torch.Tensor:
        return LigerTVDLossFunction.apply(p, q, shift_labels, self.reduction, self.ignore_index)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, ignore_index={self.ignore_index}"
