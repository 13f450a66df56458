"""Per-token cross-entropy and total variation distance, in pure PyTorch
(math: :mod:`liger_kernel.ops.fused_ce_tvd`).

Rows are walked in chunks of at most CHUNK_ELEMENTS values (the kl_div
backend's :func:`row_chunks`), in fp32 (float64 for float64 logits), so the
temporaries stay bounded whatever the batch and vocabulary. Forward keeps each
row's two log-sum-exps and Sigma; backward forms the softmaxes again from them.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch.kl_div import row_chunks
from liger_kernel.ops.kl_div import loss_dtype


def _chunk_terms(
    student: torch.Tensor, teacher: torch.Tensor, student_lse: torch.Tensor, teacher_lse: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, sign(P - Q)) of a chunk of rows, from their log-sum-exps."""
    p = torch.exp(student - student_lse.unsqueeze(1))
    q = torch.exp(teacher - teacher_lse.unsqueeze(1))
    return p, torch.sign(p - q)


class FusedCETVDFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        target: torch.Tensor,
        ignore_index: int = -100,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        math_dtype = loss_dtype(student_logits.dtype, teacher_logits.dtype)
        n_rows, vocab = student_logits.shape
        device = student_logits.device
        ce = torch.empty(n_rows, dtype=math_dtype, device=device)
        tvd = torch.empty_like(ce)
        student_lse = torch.empty_like(ce)
        teacher_lse = torch.empty_like(ce)
        sigma = torch.empty_like(ce)
        kept = target != ignore_index
        in_range = (target >= 0) & (target < vocab)
        for rows in row_chunks(n_rows, vocab):
            s = student_logits[rows].to(math_dtype)
            u = teacher_logits[rows].to(math_dtype)
            student_lse[rows] = torch.logsumexp(s, dim=-1)
            teacher_lse[rows] = torch.logsumexp(u, dim=-1)
            p, sign = _chunk_terms(s, u, student_lse[rows], teacher_lse[rows])
            q = torch.exp(u - teacher_lse[rows].unsqueeze(1))
            picked = s.gather(1, torch.where(in_range[rows], target[rows], 0).long().unsqueeze(1)).squeeze(1)
            picked = torch.where(in_range[rows], picked, float("nan"))
            ce[rows] = torch.where(kept[rows], student_lse[rows] - picked, 0.0)
            tvd[rows] = torch.where(kept[rows], 0.5 * (p - q).abs().sum(dim=-1), 0.0)
            sigma[rows] = (p * sign).sum(dim=-1)
        ctx.save_for_backward(student_logits, teacher_logits, target, student_lse, teacher_lse, sigma)
        ctx.ignore_index = ignore_index
        return ce, tvd

    @staticmethod
    def backward(ctx: Any, grad_ce: torch.Tensor | None, grad_tvd: torch.Tensor | None) -> tuple[Any, ...]:
        student_logits, teacher_logits, target, student_lse, teacher_lse, sigma = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        n_rows, vocab = student_logits.shape
        math_dtype = sigma.dtype
        grad_ce = torch.zeros_like(sigma) if grad_ce is None else grad_ce.to(math_dtype)
        grad_tvd = torch.zeros_like(sigma) if grad_tvd is None else grad_tvd.to(math_dtype)
        kept = target != ctx.ignore_index
        grad = torch.empty_like(student_logits)
        columns = torch.arange(vocab, device=student_logits.device)
        for rows in row_chunks(n_rows, vocab):
            s = student_logits[rows].to(math_dtype)
            u = teacher_logits[rows].to(math_dtype)
            p, sign = _chunk_terms(s, u, student_lse[rows], teacher_lse[rows])
            g_ce, g_tvd = grad_ce[rows].unsqueeze(1), grad_tvd[rows].unsqueeze(1)
            d = g_ce * (p - (columns == target[rows].unsqueeze(1)).to(math_dtype))
            d = d + g_tvd * 0.5 * p * (sign - sigma[rows].unsqueeze(1))
            grad[rows] = torch.where(kept[rows].unsqueeze(1), d, 0.0)
        return grad, None, None, None
