"""Two LM heads and the generalized JSD between them (distillation), chunk by chunk over tokens
(math: :mod:`liger_kernel.ops.fused_linear_jsd`).

Per chunk of rows: the two heads' logits by torch.mm (cuBLAS), each in its
GEMM dtype; the JSD kernel in logits mode (:mod:`liger_kernel.triton.jsd`)
writes dlogits over the student's; then the chunk's share of dstudent_input
and dstudent_weight. Everything happens in forward; backward multiplies both gradients by the
scalar incoming gradient (a device-side no-op when it is 1). The teacher gets
no gradient.

Rows whose label is ignored are left out of the chunks: their loss and
gradient are zero, so they need no GEMM. Counting the kept rows is the one
host synchronization, and it also gives D.

Memory: one chunk of student logits and one of teacher logits
(:func:`chunk_rows`: each about as many elements as the student input), one
gathered chunk of inputs, dstudent_input in the GEMM dtype, and dstudent_weight
in the contract's accumulation dtype (``accum_dtype``, else the weight's), with
no (V, H) temporary.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.losses import accumulate_weight_grad
from liger_kernel.ops.cross_entropy import loss_dtype
from liger_kernel.ops.fused_linear_cross_entropy import accumulation_dtype
from liger_kernel.triton.cross_entropy import alias, grads_wanted, scale_rows_, warn_if_repeated
from liger_kernel.triton.jsd import jsd_rows

#: Each chunk of logits (student's, teacher's) holds about this many times as
#: many elements as the student input (rows x hidden).
CHUNK_LOGITS_TO_INPUT = 1
#: Chunk rows are rounded down to a multiple of this, for GEMM tiles.
CHUNK_ROW_MULTIPLE = 64


def chunk_rows(n_rows: int, hidden: int, vocab: int) -> int:
    """Rows per chunk: at most CHUNK_LOGITS_TO_INPUT x (n_rows x hidden) logits,
    rounded down to a multiple of CHUNK_ROW_MULTIPLE, at least one multiple,
    at most n_rows. E.g. (8192, 4096, 128256) -> 256 rows: 63 MiB of bf16 logits per head."""
    rows = CHUNK_LOGITS_TO_INPUT * n_rows * hidden // max(vocab, 1)
    rows = max(CHUNK_ROW_MULTIPLE, rows // CHUNK_ROW_MULTIPLE * CHUNK_ROW_MULTIPLE)
    return max(1, min(n_rows, rows))


def gemm_dtype(input: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """autocast's dtype when it is on, else the promoted dtype of the operands."""
    device_type = input.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return torch.promote_types(input.dtype, weight.dtype)


def _take(values: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
    """The selected rows: a view for a slice, a copy for an index tensor."""
    return values[rows] if isinstance(rows, slice) else values.index_select(0, rows)


#: GEMM dtypes whose gradient is formed in backward, with the incoming gradient
#: folded into dlogits before they are rounded (see liger_kernel.triton.jsd):
#: fp16 cannot hold a mean JSD's dlogits (about 1 / (rows * V)) until a loss
#: scale multiplies them. This costs the two logits GEMMs once more per chunk.
SCALE_BEFORE_ROUNDING = (torch.float16,)


def _walk(
    xs: torch.Tensor,
    ws: torch.Tensor,
    xt: torch.Tensor,
    wt: torch.Tensor,
    kept: torch.Tensor | None,
    divisor: torch.Tensor,
    loss_rows: torch.Tensor,
    options: dict[str, Any],
    want: tuple[bool, bool],
    accum_dtype: torch.dtype,
    grad_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One walk over the chunks of kept rows (all rows when ``kept`` is None):
    each kept row's loss into ``loss_rows`` (in the order of ``kept``), and the
    requested (dstudent_input, dstudent_weight), scaled by ``grad_scale`` when given,
    dstudent_weight in ``accum_dtype``."""
    n_rows, vocab = xs.shape[0], ws.shape[0]
    device = xs.device
    want_input, want_weight = want
    write_grad = want_input or want_weight
    n_kept = n_rows if kept is None else kept.numel()
    step = chunk_rows(n_rows, xs.shape[1], vocab)
    if kept is None:
        selections = [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]
    else:
        selections = [kept[start : start + step] for start in range(0, n_kept, step)]
    grad_input = None
    if want_input:
        grad_input = torch.empty_like(xs) if kept is None else torch.zeros_like(xs)
    # The first chunk overwrites grad_weight, so only a walk without chunks needs zeros.
    allocate = torch.empty if n_kept > 0 else torch.zeros
    grad_weight = allocate(ws.shape, dtype=accum_dtype, device=device) if want_weight else None
    slice_rows = max(1, step * vocab // max(xs.shape[1], 1))
    capacity = min(step, max(n_kept, 1))
    student_buffer = torch.empty(capacity, vocab, dtype=xs.dtype, device=device)
    teacher_buffer = torch.empty(capacity, vocab, dtype=xt.dtype, device=device)
    position = 0
    for index, rows in enumerate(selections):
        student_chunk = _take(xs, rows)
        count = student_chunk.shape[0]
        student_logits = student_buffer[:count]
        teacher_logits = teacher_buffer[:count]
        torch.mm(student_chunk, ws.t(), out=student_logits)
        torch.mm(_take(xt, rows), wt.t(), out=teacher_logits)
        jsd_rows(
            student_logits,
            teacher_logits,
            divisor,
            loss_rows[position : position + count],
            grad=student_logits if write_grad else None,
            grad_scale=grad_scale,
            **options,
        )
        position += count
        if grad_weight is not None:
            accumulate_weight_grad(grad_weight, student_logits, student_chunk, index == 0, slice_rows)
        if grad_input is not None:
            if isinstance(rows, slice):
                torch.mm(student_logits, ws, out=grad_input[rows])
            else:
                # the gathered chunk is dead now: its buffer takes dinput
                torch.mm(student_logits, ws, out=student_chunk)
                grad_input.index_copy_(0, rows, student_chunk)
        del student_chunk
    return grad_input, grad_weight


class FusedLinearJSDFunction(torch.autograd.Function):
    """Triton fused linear JSD with the arguments of ``LigerFusedLinearJSDFunction``.
    No argument is ever written; gradients come back in each argument's dtype.
    The graph supports one backward pass."""

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
        student_dtype = gemm_dtype(student_input, student_weight)
        teacher_dtype = gemm_dtype(teacher_input, teacher_weight)
        xs, ws = student_input.to(student_dtype), student_weight.to(student_dtype)
        xt, wt = teacher_input.to(teacher_dtype), teacher_weight.to(teacher_dtype)
        n_rows = xs.shape[0]
        wanted = grads_wanted(ctx)
        want = (wanted[0], wanted[1])
        replay = any(want) and student_dtype in SCALE_BEFORE_ROUNDING

        kept = None
        if shift_labels is not None:
            kept = torch.nonzero(shift_labels != ignore_index).squeeze(1)
            if kept.numel() == n_rows:
                kept = None
        n_kept = n_rows if kept is None else kept.numel()
        rows_dtype = torch.float64 if torch.float64 in (student_dtype, teacher_dtype) else torch.float32
        divisor = torch.full((1,), float(max(n_kept, 1)), dtype=rows_dtype, device=xs.device)
        options = {"beta": jsd_beta, "temperature": temperature}
        loss_rows = torch.zeros(max(n_kept, 1), dtype=rows_dtype, device=xs.device)
        accum_dtype = accumulation_dtype(ws.dtype, accum_dtype)
        grads = _walk(
            xs, ws, xt, wt, kept, divisor, loss_rows, options, (False, False) if replay else want, accum_dtype
        )

        ctx.replay = replay
        ctx.input_dtypes = (student_input.dtype, student_weight.dtype)
        if replay:
            ctx.save_for_backward(xs, ws, xt, wt, kept, divisor)
            ctx.options, ctx.want, ctx.accum_dtype = options, want, accum_dtype
        else:
            # Kept on ctx, not saved: backward scales these buffers in place and hands them on.
            ctx.grad_buffers = grads
        return loss_rows.sum().to(loss_dtype(student_input.dtype))

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[Any, ...]:
        if ctx.replay:
            xs, ws, xt, wt, kept, divisor = ctx.saved_tensors
            scratch = torch.empty(xs.shape[0], dtype=divisor.dtype, device=xs.device)
            scale = grad_loss.reshape(1).to(divisor.dtype)
            grads = _walk(
                xs, ws, xt, wt, kept, divisor, scratch, ctx.options, ctx.want, ctx.accum_dtype, grad_scale=scale
            )
        else:
            warn_if_repeated(ctx, "fused_linear_jsd")
            grads = tuple(
                scale_rows_(grad.view(-1, grad.shape[-1]), grad_loss).view(grad.shape) if grad is not None else None
                for grad in ctx.grad_buffers
            )
        dinput, dweight = (
            alias(grad.to(dtype)) if grad is not None else None for grad, dtype in zip(grads, ctx.input_dtypes)
        )
        return dinput, dweight, None, None, None, None, None, None, None
