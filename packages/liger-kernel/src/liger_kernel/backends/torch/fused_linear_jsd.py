"""Two LM heads and the generalized JSD between them (distillation), in pure PyTorch
(math: :mod:`liger_kernel.ops.fused_linear_jsd`).

Per chunk of rows, never the whole batch's logits: the chunk's logits in fp32
(float64 for float64 inputs), the terms of
:func:`liger_kernel.backends.torch.jsd.jsd_terms`, then the chunk's share of
dstudent_input and dstudent_weight. The GEMMs run in the
promoted dtype of each head's input and weight (the gradient GEMMs in fp32
for fp16, whose range cannot hold dlogits before a loss scale multiplies
them); dstudent_weight accumulates in the contract's accumulation dtype.
Gradients are computed in forward; backward scales them by the incoming scalar
gradient.

Chunks: :func:`chunk_rows` rows, so that one chunk of logits holds about as
many elements as the student input (and never more than CHUNK_ELEMENTS), at
least MIN_CHUNK_ROWS rows: the peak memory of the walk is a few chunks of
fp32 values, whatever the vocabulary.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import compute_dtype
from liger_kernel.backends.torch.jsd import jsd_terms
from liger_kernel.losses import accumulate_weight_grad, kept_divisor
from liger_kernel.ops.cross_entropy import loss_dtype
from liger_kernel.ops.fused_linear_cross_entropy import accumulation_dtype

CHUNK_ELEMENTS = 1 << 24
MIN_CHUNK_ROWS = 16


def chunk_rows(rows: int, hidden: int, vocab: int) -> int:
    """Rows per chunk: logits of about rows x hidden elements, at most CHUNK_ELEMENTS."""
    vocab = max(vocab, 1)
    by_input = max(MIN_CHUNK_ROWS, rows * hidden // vocab)
    return max(1, min(rows, by_input, CHUNK_ELEMENTS // vocab))


class FusedLinearJSDFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        student_input: torch.Tensor,
        student_weight: torch.Tensor,
        teacher_input: torch.Tensor,
        teacher_weight: torch.Tensor,
        shift_labels: torch.Tensor | None = None,
        jsd_beta: float = 0.5,
        ignore_index: int = -100,
        temperature: float = 1.0,
        accum_dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        math_dtype = compute_dtype(student_input, student_weight, teacher_input, teacher_weight)
        student_gemm = torch.promote_types(student_input.dtype, student_weight.dtype)
        teacher_gemm = torch.promote_types(teacher_input.dtype, teacher_weight.dtype)
        xs, ws = student_input.to(student_gemm), student_weight.to(student_gemm)
        xt, wt = teacher_input.to(teacher_gemm), teacher_weight.to(teacher_gemm)
        rows, vocab = xs.shape[0], ws.shape[0]
        device = xs.device
        need_input, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        accum_dtype = accumulation_dtype(student_weight.dtype, accum_dtype)

        divisor = kept_divisor(shift_labels, ignore_index, rows, math_dtype, device)
        keep = (shift_labels != ignore_index) if shift_labels is not None else None
        row_loss = torch.empty(rows, dtype=math_dtype, device=device)
        # fp16 cannot hold dlogits (about 1 / (rows * V)) before a loss scale
        # multiplies them in backward: its gradient GEMMs run in the compute dtype.
        grad_gemm = math_dtype if student_gemm == torch.float16 else student_gemm
        ws_grad = ws.to(grad_gemm)
        grad_input = torch.empty(xs.shape, dtype=grad_gemm, device=device) if need_input else None
        grad_weight = torch.zeros(ws.shape, dtype=accum_dtype, device=device) if need_weight else None
        step = chunk_rows(rows, xs.shape[1], vocab)
        slice_rows = max(1, step * vocab // max(xs.shape[1], 1))
        for start in range(0, rows, step):
            chunk = slice(start, min(start + step, rows))
            student_logp = torch.log_softmax((xs[chunk] @ ws.T).to(math_dtype) / temperature, dim=-1)
            teacher_logp = torch.log_softmax((xt[chunk] @ wt.T).to(math_dtype) / temperature, dim=-1)
            loss, g = jsd_terms(student_logp, teacher_logp, jsd_beta)
            del teacher_logp
            if keep is not None:
                loss = torch.where(keep[chunk], loss, 0.0)
            row_loss[chunk] = loss
            if not (need_input or need_weight):
                continue
            dlogits = g - torch.exp(student_logp) * g.sum(dim=-1, keepdim=True)
            dlogits /= divisor * temperature
            if keep is not None:
                dlogits = torch.where(keep[chunk].unsqueeze(1), dlogits, 0.0)
            dlogits = dlogits.to(grad_gemm)
            if grad_input is not None:
                grad_input[chunk] = dlogits @ ws_grad
            if grad_weight is not None:
                accumulate_weight_grad(grad_weight, dlogits, xs[chunk].to(grad_gemm), start == 0, slice_rows)

        ctx.save_for_backward(grad_input, grad_weight)
        ctx.dtypes = (student_input.dtype, student_weight.dtype)
        return (row_loss.sum() / divisor).to(loss_dtype(student_input.dtype))

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[Any, ...]:
        grads = []
        for grad, dtype in zip(ctx.saved_tensors, ctx.dtypes):
            if grad is None:
                grads.append(None)
                continue
            wide = compute_dtype(grad)
            grads.append((grad.to(wide) * grad_loss.to(wide)).to(dtype))
        return grads[0], grads[1], None, None, None, None, None, None, None
