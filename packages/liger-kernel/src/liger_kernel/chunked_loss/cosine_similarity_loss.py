"""Cosine-similarity distillation over fused LM heads, chunked (see :mod:`.fused_linear_distillation`).

Per row, on the temperature-scaled logits s (student) and t (teacher),
    D = beta (1 - cos(s, t)),   cos(s, t) = s . t / (|s| |t|)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from liger_kernel.chunked_loss.fused_linear_distillation import fused_linear_distillation_loss


def cosine_distance(student_logits: torch.Tensor, teacher_logits: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-row ``beta * (1 - cosine similarity)`` of the two logit vectors."""
    return beta * (1 - F.cosine_similarity(student_logits, teacher_logits, dim=-1))


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
    """Cosine-similarity distillation loss; ``compiled`` is accepted for compatibility."""
    return fused_linear_distillation_loss(
        student_input,
        student_weight,
        teacher_input,
        teacher_weight,
        true_labels,
        student_bias,
        teacher_bias,
        lambda s, t: cosine_distance(s, t, beta),
        weight_hard_loss=weight_hard_loss,
        weight_soft_loss=weight_soft_loss,
        ignore_index=ignore_index,
        temperature=temperature,
        chunk_size=chunk_size,
        return_soft_hard_loss=return_soft_hard_loss,
    )


class LigerFusedLinearCosineSimilarityFunction:
    """Function-style entry point: ``.apply(...)`` takes ``liger_fused_linear_cosine``'s arguments."""

    apply = staticmethod(liger_fused_linear_cosine)


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
