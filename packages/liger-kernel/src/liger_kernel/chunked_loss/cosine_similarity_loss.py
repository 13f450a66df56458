"""Cosine-similarity distillation over fused LM heads, chunked (see :mod:`.fused_linear_distillation`).

Per row, on the temperature-scaled logits s (student) and t (teacher),
    D = beta (1 - cos(s, t)),   cos(s, t) = s . t / (|s| |t|)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from liger_kernel.chunked_loss._chunking import apply_or_evaluate
from liger_kernel.chunked_loss.fused_linear_distillation import (
    LigerFusedLinearDistillationBase,
    distillation_forward,
    masked_row_sum,
)


def cosine_distance(student_logits: torch.Tensor, teacher_logits: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-row ``beta * (1 - cosine similarity)`` of the two logit vectors."""
    return beta * (1 - F.cosine_similarity(student_logits, teacher_logits, dim=-1))


class LigerFusedLinearCosineSimilarityFunction(LigerFusedLinearDistillationBase):
    """Cosine-similarity distillation as an autograd Function: ``.apply`` takes ``forward``'s arguments after ctx,
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
        """The cosine-similarity distillation loss of the module docstring; ``compiled`` is accepted for compatibility (the math is eager PyTorch)."""
        return distillation_forward(
            ctx,
            student_input,
            student_weight,
            teacher_input,
            teacher_weight,
            true_labels,
            student_bias,
            teacher_bias,
            masked_row_sum(lambda s, t: cosine_distance(s, t, beta), ignore_index),
            weight_hard_loss=weight_hard_loss,
            weight_soft_loss=weight_soft_loss,
            ignore_index=ignore_index,
            temperature=temperature,
            chunk_size=chunk_size,
            return_soft_hard_loss=return_soft_hard_loss,
        )


def liger_fused_linear_cosine(
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
    """``LigerFusedLinearCosineSimilarityFunction.apply``; without gradients to take it only evaluates."""
    return apply_or_evaluate(
        LigerFusedLinearCosineSimilarityFunction, (student_input, student_weight, student_bias),
        student_input, student_weight, teacher_input, teacher_weight, true_labels, student_bias, teacher_bias,
        weight_hard_loss, weight_soft_loss, beta, ignore_index, temperature, compiled, chunk_size,
        return_soft_hard_loss,
    )  # fmt: skip


class LigerFusedLinearCosineSimilarityLoss(torch.nn.Module):
    """Cosine distillation: ``loss_fn(student_input, student_weight, teacher_input, teacher_weight, true_labels,
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
        return liger_fused_linear_cosine(
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
