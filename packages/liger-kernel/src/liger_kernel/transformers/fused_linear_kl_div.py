"""Distillation from a given target distribution through an LM head, without its
logits in memory: :class:`liger_kernel.ops.LigerFusedLinearKLDivFunction` (see
:mod:`liger_kernel.ops.fused_linear_kl_div` for the math).

    loss = KL(target || softmax(student_input @ student_weight.T / temperature))
reduced over the rows whose ``shift_labels`` entry is not ``ignore_index`` as
``torch.nn.KLDivLoss`` reduces ("batchmean", "mean" or "sum"). Unlike
:class:`~liger_kernel.transformers.fused_linear_jsd.LigerFusedLinearJSD` the
teacher comes as probabilities (cached soft labels, say), so only the student's
head is fused. Only the student (its input and weight) receives gradients.
"""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops import LigerFusedLinearKLDivFunction
from liger_kernel.ops.fused_linear_kl_div import check_scalar_options


class LigerFusedLinearKLDivLoss(nn.Module):
    """Called as ``loss_fn(student_input, student_weight, target, shift_labels=None)``
    with student_input (rows, H), student_weight (V, H), target (rows, V)
    probabilities and shift_labels (rows,); returns a scalar."""

    def __init__(
        self,
        reduction: str | None = "batchmean",
        ignore_index: int = -100,
        temperature: float = 1.0,
        eps: float = 1e-10,
        accum_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_scalar_options(reduction, ignore_index, temperature, eps)
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.temperature = temperature
        self.eps = eps
        self.accum_dtype = accum_dtype

    def forward(
        self,
        student_input: torch.Tensor,
        student_weight: torch.Tensor,
        target: torch.Tensor,
        shift_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return LigerFusedLinearKLDivFunction.apply(
            student_input,
            student_weight,
            target,
            shift_labels,
            self.reduction,
            self.ignore_index,
            self.temperature,
            self.eps,
            self.accum_dtype,
        )

    def extra_repr(self) -> str:
        return (
            f"reduction={self.reduction}, ignore_index={self.ignore_index}, temperature={self.temperature}, "
            f"eps={self.eps}, accum_dtype={self.accum_dtype}"
        )
