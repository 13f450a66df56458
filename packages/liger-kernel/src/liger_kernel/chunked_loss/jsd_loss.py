"""Generalized Jensen-Shannon distillation over fused LM heads, chunked (see :mod:`.fused_linear_distillation`).

Per row, with student distribution S = softmax(s), teacher T = softmax(t) and
the mixture M = (1 - beta) S + beta T (GKD's convention, as TRL's trainers and
liger-kernel 0.8.5 use it),
    D = beta KL(T || M) + (1 - beta) KL(S || M)
and, at the ends, where that D vanishes, its limits: beta = 0 gives
KL(T || S) (forward KL), beta = 1 gives KL(S || T) (reverse KL).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from liger_kernel.chunked_loss._chunking import apply_or_evaluate
from liger_kernel.chunked_loss.fused_linear_distillation import (
    LigerFusedLinearDistillationBase,
    distillation_forward,
    masked_row_sum,
)


def _kl(p_logp: torch.Tensor, q_logp: torch.Tensor) -> torch.Tensor:
    """Per-row KL(P || Q) from log-probabilities."""
    return (p_logp.exp() * (p_logp - q_logp)).sum(-1)


def generalized_jsd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-row generalized JSD (module docstring) between ``softmax(student_logits)`` and ``softmax(teacher_logits)``."""
    student_logp = F.log_softmax(student_logits, dim=-1)
    teacher_logp = F.log_softmax(teacher_logits, dim=-1)
    if beta == 0:
        return _kl(teacher_logp, student_logp)
    if beta == 1:
        return _kl(student_logp, teacher_logp)
    mixture_logp = torch.logaddexp(student_logp + math.log(1 - beta), teacher_logp + math.log(beta))
    return beta * _kl(teacher_logp, mixture_logp) + (1 - beta) * _kl(student_logp, mixture_logp)


class LigerFusedLinearJSDFunction(LigerFusedLinearDistillationBase):
    """JSD distillation as an autograd Function: ``.apply`` takes ``forward``'s arguments after ctx,
    positionally."""

    @classmethod
    def forward(
        cls,
        ctx,
        student_input,
        student_weight,
        teacher_input,
        teacher_weight,
        true_labels,
        student_bias,
        teacher_bias,
        weight_hard_loss=0.5,
        weight_soft_loss=0.5,
        beta=0.5,
        ignore_index=-100,
        temperature=1.0,
        compiled=True,
        chunk_size=1024,
        return_soft_hard_loss=False,
    ):
        """The generalized JSD distillation loss of the module docstring; ``compiled`` is accepted for compatibility (the math is eager PyTorch)."""
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        return distillation_forward(
            ctx,
            student_input,
            student_weight,
            teacher_input,
            teacher_weight,
            true_labels,
            student_bias,
            teacher_bias,
            masked_row_sum(lambda s, t: generalized_jsd(s, t, beta), ignore_index),
            weight_hard_loss=weight_hard_loss,
            weight_soft_loss=weight_soft_loss,
            ignore_index=ignore_index,
            temperature=temperature,
            chunk_size=chunk_size,
            return_soft_hard_loss=return_soft_hard_loss,
        )


def liger_fused_linear_jsd(
    student_input: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_input: torch.Tensor,
    teacher_weight: torch.Tensor,
    true_labels: torch.Tensor,
    student_bias: torch.Tensor | None = None,
    teacher_bias: torch.Tensor | None = None,
    weight_hard_loss: float = 0.5,
    weight_soft_loss: float = 0.5,
    beta: float = 0.5,
    ignore_index: int = -100,
    temperature: float = 1.0,
    compiled: bool = True,
    chunk_size: int = 1024,
    return_soft_hard_loss: bool = False,
):
    """``LigerFusedLinearJSDFunction.apply``; without gradients to take it only evaluates."""
    return apply_or_evaluate(
        LigerFusedLinearJSDFunction, (student_input, student_weight, student_bias),
        student_input, student_weight, teacher_input, teacher_weight, true_labels, student_bias, teacher_bias,
        weight_hard_loss, weight_soft_loss, beta, ignore_index, temperature, compiled, chunk_size,
        return_soft_hard_loss,
    )  # fmt: skip


class LigerFusedLinearJSDLoss(torch.nn.Module):
    """JSD distillation: ``loss_fn(student_input, student_weight, teacher_input, teacher_weight, true_labels,
    student_bias=None, teacher_bias=None)``."""

    def __init__(
        self,
        weight_hard_loss: float = 0.5,
        weight_soft_loss: float = 0.5,
        beta: float = 0.5,
        ignore_index: int = -100,
        temperature: float = 1.0,
        compiled: bool = True,
        chunk_size: int = 1024,
        return_soft_hard_loss: bool = False,
    ):
        super().__init__()
        if temperature == 0:
            raise ValueError("temperature cannot be 0")
        self.weight_hard_loss = weight_hard_loss
        self.weight_soft_loss = weight_soft_loss
        self.beta = beta
        self.ignore_index = ignore_index
        self.temperature = temperature
        self.compiled = compiled
        self.chunk_size = chunk_size
        self.return_soft_hard_loss = return_soft_hard_loss

    def forward(
        self,
        student_input,
        student_weight,
        teacher_input,
        teacher_weight,
        true_labels,
        student_bias=None,
        teacher_bias=None,
    ):
        return liger_fused_linear_jsd(
            student_input,
            student_weight,
            teacher_input,
            teacher_weight,
            true_labels,
            student_bias,
            teacher_bias,
            self.weight_hard_loss,
            self.weight_soft_loss,
            self.beta,
            self.ignore_index,
            self.temperature,
            self.compiled,
            self.chunk_size,
            self.return_soft_hard_loss,
        )
