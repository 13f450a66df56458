"""Kullback-Leibler divergence over the last dimension, in pure PyTorch
(math: :mod:`liger_kernel.ops.kl_div`).

Rows are processed in chunks of at most CHUNK_ELEMENTS values, so the fp32
temporaries stay bounded whatever the batch and vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from liger_kernel.backends.torch._common import as_rows
from liger_kernel.ops.kl_div import loss_dtype, reduction_divisor

CHUNK_ELEMENTS = 1 << 24


def row_chunks(rows: int, width: int) -> Iterator[slice]:
    step = max(1, CHUNK_ELEMENTS // max(width, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def pointwise_loss(y: torch.Tensor, t: torch.Tensor, log_target: bool, eps: float) -> torch.Tensor:
    if log_target:
        return t.exp() * (t - y)
    return t * (t.clamp(min=eps).log() - y)


class KLDivFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        y_pred: torch.Tensor,
        y_true: torch.Tensor,
        reduction: str = "batchmean",
        log_target: bool = False,
        eps: float = 1e-10,
    ) -> torch.Tensor:
        math_dtype = loss_dtype(y_pred.dtype, y_true.dtype)
        pred_rows, true_rows = as_rows(y_pred), as_rows(y_true)
        n_rows, width = pred_rows.shape
        per_element = (
            torch.empty((n_rows, width), dtype=math_dtype, device=y_pred.device) if reduction == "none" else None
        )
        total = torch.zeros((), dtype=math_dtype, device=y_pred.device)
        for rows in row_chunks(n_rows, width):
            loss = pointwise_loss(pred_rows[rows].to(math_dtype), true_rows[rows].to(math_dtype), log_target, eps)
            if per_element is not None:
                per_element[rows] = loss
            else:
                total += loss.sum()
        ctx.save_for_backward(y_true)
        ctx.reduction, ctx.log_target, ctx.pred_dtype = reduction, log_target, y_pred.dtype
        ctx.divisor = reduction_divisor(y_pred.shape, reduction)
        if per_element is not None:
            return per_element.view(y_pred.shape)
        return total / ctx.divisor

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[Any, ...]:
        (y_true,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        math_dtype = grad_loss.dtype
        true_rows = as_rows(y_true)
        n_rows, width = true_rows.shape
        elementwise = ctx.reduction == "none"
        grad_rows = as_rows(grad_loss) if elementwise else None
        scale = None if elementwise else -grad_loss / ctx.divisor
        d_pred = torch.empty((n_rows, width), dtype=ctx.pred_dtype, device=y_true.device)
        for rows in row_chunks(n_rows, width):
            t = true_rows[rows].to(math_dtype)
            target_prob = t.exp() if ctx.log_target else t
            factor = -grad_rows[rows] if grad_rows is not None else scale
            d_pred[rows] = target_prob * factor
        return d_pred.view(y_true.shape), None, None, None, None
