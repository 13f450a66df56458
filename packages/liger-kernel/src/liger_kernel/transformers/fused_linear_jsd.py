"""Distillation loss over two LM heads without their logits in memory, through
:class:`liger_kernel.ops.LigerFusedLinearJSDFunction` (see
:mod:`liger_kernel.ops.fused_linear_jsd` for the math).

    loss = JSD_jsd_beta(log_softmax(teacher_input @ teacher_weight.T / temperature)
                        || log_softmax(student_input @ student_weight.T / temperature))
as :class:`liger_kernel.transformers.jsd.LigerJSD` defines it, averaged over
the rows whose ``shift_labels`` entry is not ``ignore_index``. Only the student
(its input and weight) receives gradients.
"""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops import LigerFusedLinearJSDFunction
from liger_kernel.ops.fused_linear_jsd import check_scalar_options


class LigerFusedLinearJSD(nn.Module):
    def __init__(
        self,
        jsd_beta: float = 0.5,
        ignore_index: int = -100,
        temperature: float = 1.0,
        accum_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_scalar_options(jsd_beta, ignore_index, temperature)
        self.jsd_beta = jsd_beta
        self.ignore_index = ignore_index
        self.temperature = temperature
        self.accum_dtype = accum_dtype

    def forward(
        self,
        student_input: torch.Tensor,
        student_weight: torch.Tensor,
        teacher_input: torch.Tensor,
        teacher_weight: torch.Tensor,
        shift_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return LigerFusedLinearJSDFunction.apply(
            student_input,
            student_weight,
            teacher_input,
            teacher_weight,
            shift_labels,
            self.jsd_beta,
            self.ignore_index,
            self.temperature,
            self.accum_dtype,
        )

    def extra_repr(self) -> str:
        return f"jsd_beta={self.jsd_beta}, ignore_index={self.ignore_index}, temperature={self.temperature}"
