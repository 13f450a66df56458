"""Generalized JSD over log-probabilities, in pure PyTorch, walked in row chunks
(math: :mod:`liger_kernel.ops.jsd`). Computed in fp32 (float64 for float64 inputs).

The forward pass computes the gradient (it needs the same exponentials) and
keeps it, in the input's dtype (fp32 for fp16 input, whose range cannot hold
it before a loss scale multiplies it), as the only (rows, V) buffer; backward
multiplies it by the incoming gradient. Chunks of at most CHUNK_ELEMENTS
elements bound the fp32 temporaries whatever the batch and vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from liger_kernel.backends.torch._common import compute_dtype
from liger_kernel.losses import kept_divisor
from liger_kernel.ops.cross_entropy import loss_dtype

CHUNK_ELEMENTS = 1 << 24


def row_chunks(rows: int, vocab: int) -> Iterator[slice]:
    step = max(1, CHUNK_ELEMENTS // max(vocab, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def _where_alive(prob: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` where ``prob`` > 0, else 0: the p log p -> 0 limit, without the nan of 0 * inf."""
    return torch.where(prob > 0, value, torch.zeros((), dtype=value.dtype, device=value.device))


def jsd_terms(x: torch.Tensor, y: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row loss (summed over the vocabulary) and dl/dX, for log-probabilities
    ``x`` (student) and ``y`` (teacher) in the compute dtype."""
    if beta == 0.0:
        p = torch.exp(y)
        return _where_alive(p, p * (y - x)).sum(dim=-1), -p
    if beta == 1.0:
        q = torch.exp(x)
        log_ratio = x - y
        return _where_alive(q, q * log_ratio).sum(dim=-1), _where_alive(q, q * (log_ratio + 1.0))
    p = torch.exp(y)
    q = torch.exp(x)
    log_m = torch.log(beta * p + (1.0 - beta) * q)
    # the student's term of the loss is also its gradient
    student_term = _where_alive(q, (1.0 - beta) * q * (x - log_m))
    loss = (_where_alive(p, beta * p * (y - log_m)) + student_term).sum(dim=-1)
    return loss, student_term


class JSDFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        _input: torch.Tensor,
        target: torch.Tensor,
        shift_labels: torch.Tensor | None = None,
        beta: float = 0.5,
        ignore_index: int = -100,
    ) -> torch.Tensor:
        input = _input  # 0.8.5's name in the signature, the usual one below
        math_dtype = compute_dtype(input, target)
        rows, vocab = input.shape
        need_grad = ctx.needs_input_grad[0]
        divisor = kept_divisor(shift_labels, ignore_index, rows, math_dtype, input.device)
        keep = (shift_labels != ignore_index) if shift_labels is not None else None
        row_loss = torch.empty(rows, dtype=math_dtype, device=input.device)
        # fp16 cannot hold the gradient (about 1 / (rows * V) per element) until a
        # loss scale multiplies it in backward: keep it in the compute dtype until then.
        grad_dtype = math_dtype if input.dtype == torch.float16 else input.dtype
        grad = torch.empty(input.shape, dtype=grad_dtype, device=input.device) if need_grad else None
        for chunk in row_chunks(rows, vocab):
            loss, dx = jsd_terms(input[chunk].to(math_dtype), target[chunk].to(math_dtype), beta)
            dx = dx / divisor
            if keep is not None:
                kept = keep[chunk]
                loss = torch.where(kept, loss, 0.0)
                dx = torch.where(kept.unsqueeze(1), dx, 0.0)
            row_loss[chunk] = loss
            if grad is not None:
                grad[chunk] = dx
        ctx.save_for_backward(grad)
        ctx.input_dtype = input.dtype
        return (row_loss.sum() / divisor).to(loss_dtype(input.dtype))

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[Any, ...]:
        (grad,) = ctx.saved_tensors
        dinput = None
        if grad is not None:
            dinput = (grad.to(compute_dtype(grad)) * grad_loss.to(compute_dtype(grad))).to(ctx.input_dtype)
        return dinput, None, None, None, None
