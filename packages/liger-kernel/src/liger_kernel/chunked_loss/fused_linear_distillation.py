"""Distillation losses (JSD, cosine similarity) over fused student and teacher LM heads, chunked.

Rows of ``student_input`` (N, Hs) and ``teacher_input`` (N, Ht) line up with
``true_labels`` (N,); (batch, seq, hidden) inputs with (batch, seq) labels, as
TRL's GKD trainer passes them, are their N = batch * seq rows. Per chunk of ``chunk_size`` rows,
    s = student_input @ student_weight.T + student_bias
    t = teacher_input @ teacher_weight.T + teacher_bias      (no gradients)
    hard = sum over counted rows of cross_entropy(s, label)   (0 without compute_ce_loss)
    soft = sum over counted rows of D(s / temperature, t / temperature)
where a row counts unless its label is ``ignore_index`` and D, one value per
row, is the loss's divergence. Both sums are divided by the number of
counted rows in the whole batch, and
    loss = weight_hard_loss * hard + weight_soft_loss * soft
A teacher head with a larger vocabulary (padded for efficiency, same tokenizer)
is met by padding s with zero logits. Gradients flow to the student input,
weight and bias only. Returns ``loss``, or ``(loss, soft, hard)`` with
``return_soft_hard_loss``.

:class:`LigerFusedLinearDistillationBase` is the same walk for a subclass
written against liger-kernel 0.8.5's base: it overrides
``distillation_loss_fn(student_logits, teacher_logits, target=..., ignore_index=..., beta=..., **loss_kwargs)``,
which gets the chunk's temperature-scaled logits and returns the sum of D over
the chunk's counted rows (it masks the ignored ones itself); its ``forward``
calls ``LigerFusedLinearDistillationBase.forward(cls, ctx, ...)``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from liger_kernel.chunked_loss._chunking import function_gradients, function_walk, linear_logits, row_chunks

RowDivergence = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``divergence(student_logits, teacher_logits) -> (rows,)`` on temperature-scaled logits."""

SoftLossSum = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``soft_sum(student_logits, teacher_logits, labels) -> 0-dim``: D summed over the chunk's counted rows."""

#: positions of student_input, student_weight and student_bias among a distillation Function's arguments
DISTILLATION_SLOTS = (0, 1, 5)


def masked_row_sum(divergence: RowDivergence, ignore_index: int) -> SoftLossSum:
    """A per-row divergence summed over the rows whose label is not ``ignore_index``."""

    def soft_sum(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (divergence(student_logits, teacher_logits) * (labels != ignore_index)).sum()

    return soft_sum


def distillation_forward(
    ctx,
    student_input: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_input: torch.Tensor,
    teacher_weight: torch.Tensor,
    true_labels: torch.Tensor,
    student_bias: torch.Tensor | None,
    teacher_bias: torch.Tensor | None,
    soft_sum: SoftLossSum,
    *,
    weight_hard_loss: float = 0.5,
    weight_soft_loss: float = 0.5,
    ignore_index: int = -100,
    temperature: float = 1.0,
    chunk_size: int = 1024,
    return_soft_hard_loss: bool = False,
    compute_ce_loss: bool = True,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distillation loss of the module docstring inside a Function's ``forward`` (``ctx`` None: evaluation)."""
    if temperature == 0:
        raise ValueError("temperature cannot be 0")
    input_shape = None
    if student_input.dim() == 3 and teacher_input.dim() == 3 and true_labels.shape == student_input.shape[:2]:
        input_shape = student_input.shape
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
    vocab_padding = teacher_weight.shape[0] - student_weight.shape[0]
    if vocab_padding < 0:
        raise ValueError(
            f"the teacher head's vocabulary ({teacher_weight.shape[0]}) cannot be smaller than the student's "
            f"({student_weight.shape[0]})"
        )
    counted_rows = (true_labels != ignore_index).sum().clamp(min=1)
    # the hard loss only matters when it is weighted in or returned
    with_hard = compute_ce_loss and (weight_hard_loss != 0 or return_soft_hard_loss)

    def term(rows: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None):
        student_logits = linear_logits(x, w, b)
        labels = true_labels.index_select(0, rows)
        hard = student_logits.new_zeros(())
        if with_hard:
            hard = F.cross_entropy(student_logits, labels, ignore_index=ignore_index, reduction="sum") / counted_rows
        with torch.no_grad():
            teacher_logits = linear_logits(teacher_input.index_select(0, rows), teacher_weight, teacher_bias)
        if vocab_padding:
            student_logits = F.pad(student_logits, (0, vocab_padding))
        soft = soft_sum(student_logits / temperature, teacher_logits / temperature, labels) / counted_rows
        loss = weight_hard_loss * hard + weight_soft_loss * soft
        return loss, (soft.detach(), hard.detach())

    chunks = row_chunks(student_input.shape[0], chunk_size, student_input.device)
    walk = function_walk(
        ctx, student_input, student_weight, student_bias, DISTILLATION_SLOTS, chunks, term, input_shape
    )
    if return_soft_hard_loss:
        soft, hard = walk.metrics
        if ctx is not None:
            ctx.mark_non_differentiable(soft, hard)
        return walk.loss, soft, hard
    return walk.loss


class LigerFusedLinearDistillationBase(torch.autograd.Function):
    """Base of the distillation Functions (module docstring); subclasses supply ``distillation_loss_fn``."""

    @staticmethod
    @abstractmethod
    def distillation_loss_fn(*args: Any, **kwargs: Any) -> torch.Tensor:
        """The chunk's soft loss, summed over its counted rows (module docstring)."""
        raise NotImplementedError("a distillation loss defines distillation_loss_fn")

    @staticmethod
    def forward(
        cls,
        ctx,
        student_input,
        student_weight,
        teacher_input,
        teacher_weight,
        target,
        student_bias=None,
        teacher_bias=None,
        chunk_size=1024,
        ignore_index=-100,
        weight_hard_loss=0.5,
        weight_soft_loss=0.5,
        beta=0.5,
        compute_ce_loss=True,
        temperature=1.0,
        compiled=True,
        return_soft_hard_loss=False,
        **loss_kwargs,
    ):
        """``cls.distillation_loss_fn`` walked over the chunks; ``compiled`` is accepted for compatibility
        (the math is eager PyTorch)."""

        def soft_sum(student_logits, teacher_logits, labels):
            return cls.distillation_loss_fn(
                student_logits, teacher_logits, target=labels, ignore_index=ignore_index, beta=beta, **loss_kwargs
            )

        return distillation_forward(
            ctx,
            student_input,
            student_weight,
            teacher_input,
            teacher_weight,
            target,
            student_bias,
            teacher_bias,
            soft_sum,
            weight_hard_loss=weight_hard_loss,
            weight_soft_loss=weight_soft_loss,
            ignore_index=ignore_index,
            temperature=temperature,
            chunk_size=chunk_size,
            return_soft_hard_loss=return_soft_hard_loss,
            compute_ce_loss=compute_ce_loss,
        )

    @staticmethod
    def backward(ctx, grad_output, *_grad_soft_hard):  # type: ignore[override]
        """Gradients for the student input, weight and bias (positions 0, 1, 5); None for every other argument."""
        return function_gradients(ctx, grad_output)
