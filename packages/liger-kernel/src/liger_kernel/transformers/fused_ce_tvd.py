"""Per-token cross-entropy and total variation distance from a teacher's logits, in
one pass: :class:`liger_kernel.ops.LigerFusedCETVDFunction` (see
:mod:`liger_kernel.ops.fused_ce_tvd` for the math).

Both terms come back unreduced, one value per row, so the caller owns masking,
per-token weighting and normalization. Only the student's logits receive a gradient.
"""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops import LigerFusedCETVDFunction
from liger_kernel.ops._contract import require_int


class LigerFusedCETVDLoss(nn.Module):
    """Called as ``loss_fn(student_logits, teacher_logits, target)`` with both
    logits (rows, V) and target (rows,) class indices; returns (ce, tvd), each (rows,)."""

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        require_int("ignore_index", ignore_index)
        self.ignore_index = ignore_index

    def forward(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return LigerFusedCETVDFunction.apply(student_logits, teacher_logits, target, self.ignore_index)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}"
