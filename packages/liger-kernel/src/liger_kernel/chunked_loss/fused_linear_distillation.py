"""Distillation losses (JSD, cosine similarity) over fused student and teacher LM heads, chunked.

Rows of ``student_input`` (N, Hs) and ``teacher_input`` (N, Ht) line up with
``true_labels`` (N,); (batch, seq, hidden) inputs with (batch, seq) labels, as
TRL's GKD trainer passes them, are their N = batch * seq rows. Per chunk of ``chunk_size`` rows,
    s = student_input @ student_weight.T + student_bias
    t = teacher_input @ teacher_weight.T + teacher_bias      (no gradients)
    hard = sum over counted rows of cross_entropy(s, label)
    soft = sum over counted rows of D(s / temperature, t / temperature)
where a row counts unless its label is ``ignore_index`` and D, one value per
row, is the loss module's divergence. Both sums are divided by the number of
counted rows in the whole batch, and
    loss = weight_hard_loss * hard + weight_soft_loss * soft
Gradients flow to the student input, weight and bias only. Returns ``loss``,
or ``(loss, soft, hard)`` with ``return_soft_hard_loss``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from liger_kernel.chunked_loss._chunking import chunked_linear_loss, linear_logits, row_chunks

RowDivergence = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``divergence(student_logits, teacher_logits) -> (rows,)`` on temperature-scaled logits."""


def fused_linear_distillation_loss(
    student_input: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_input: torch.Tensor,
    teacher_weight: torch.Tensor,
    true_labels: torch.Tensor,
    student_bias: torch.Tensor | None,
    teacher_bias: torch.Tensor | None,
    divergence: RowDivergence,
    *,
    weight_hard_loss: float = 0.5,
    weight_soft_loss: float = 0.5,
    ignore_index: int = -100,
    temperature: float = 1.0,
    chunk_size: int = 1024,
    return_soft_hard_loss: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distillation loss described in the module docstring."""
    if temperature == 0:
        raise ValueError("temperature cannot be 0")
    if student_input.dim() == 3 and teacher_input.dim() == 3 and true_labels.shape == student_input.shape[:2]:
        student_input = student_input.reshape(-1, student_input.shape[-1])
        teacher_input = teacher_input.reshape(-1, teacher_input.shape[-1])
        true_labels = true_labels.reshape(-1)
    if student_input.dim() != 2 or teacher_input.shape[0] != student_input.shape[0]:
        raise ValueError(
            f"student_input and teacher_input must be (rows, hidden), or (batch, seq, hidden) with (batch, seq) "
            f"true_labels, with the same rows; "
            f"got {tuple(student_input.shape)} and {tuple(teacher_input.shape)}"
        )
    if true_labels.shape != (student_input.shape[0],):
        raise ValueError(f"true_labels must be ({student_input.shape[0]},), got {tuple(true_labels.shape)}")
    if teacher_weight.shape[0] != student_weight.shape[0]:
        raise ValueError("student and teacher heads must share the vocabulary size")
    counted_rows = (true_labels != ignore_index).sum().clamp(min=1)

    def term(rows: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None):
        student_logits = linear_logits(x, w, b)
        labels = true_labels.index_select(0, rows)
        counted = labels != ignore_index
        hard = F.cross_entropy(student_logits, labels, ignore_index=ignore_index, reduction="sum") / counted_rows
        with torch.no_grad():
            teacher_logits = linear_logits(teacher_input.index_select(0, rows), teacher_weight, teacher_bias)
        per_row = divergence(student_logits / temperature, teacher_logits / temperature)
        soft = (per_row * counted).sum() / counted_rows
        loss = weight_hard_loss * hard + weight_soft_loss * soft
        return loss, (soft.detach(), hard.detach())

    chunks = row_chunks(student_input.shape[0], chunk_size, student_input.device)
    loss, (soft, hard) = chunked_linear_loss(student_input, student_weight, student_bias, chunks, term)
    if return_soft_hard_loss:
        return loss, soft, hard
    return loss
