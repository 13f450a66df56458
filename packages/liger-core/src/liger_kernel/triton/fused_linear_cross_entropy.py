"""Fused linear cross-entropy: the LM head and its loss, chunk by chunk over tokens.

    logits = input @ weight.T + bias                      (BT, V), one chunk of rows at a time
    loss   = cross_entropy(logits, target, ce_weight, ...) (see liger_kernel.triton.cross_entropy)
For each chunk of rows, in the compute dtype:
    logits_c = input_c @ weight.T (+ bias)                 cuBLAS (torch.mm / addmm)
    dlogits_c  written over logits_c by the cross-entropy kernel, divided by the
               global reduction divisor (computed once on the device, no sync)
    dinput_c = dlogits_c @ weight;  dweight += dlogits_c.T @ input_c;  dbias += sum_rows(dlogits_c)
With reduction "mean" or "sum" all of it happens in forward and backward only
multiplies the three gradients by the scalar grad_output (a device-side no-op
when it is 1). With "none" the gradient depends on one grad_output per row, so
backward runs the chunks again with each row's gradient scaled before the GEMMs.

Memory: one chunk of logits (CHUNK_LOGITS_TO_INPUT times the size of input, see
:func:`chunk_rows`), dinput, and dweight / dbias in accum_dtype (weight's dtype
when None; returned in weight's dtype). use_token_scaling multiplies each row's
loss (and its gradient) by the detached softmax probability of its target.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.triton.cross_entropy import (
    accuracy,
    alias,
    cross_entropy_rows,
    grads_wanted,
    loss_divisors,
    reduce_rows,
    scale_rows_,
    warn_if_repeated,
)

#: A chunk's logits hold about this many times as many elements as ``input``
#: (BT x H). Larger chunks make the dweight GEMM (K = chunk rows) less bound by
#: reading and writing dweight once per chunk; smaller ones save memory.
CHUNK_LOGITS_TO_INPUT = 2
#: Chunk rows are rounded down to a multiple of this, for GEMM tiles.
CHUNK_ROW_MULTIPLE = 64


def chunk_rows(n_rows: int, hidden: int, vocab: int) -> int:
    """Rows per chunk: the chunk's logits (rows x vocab) stay within
    CHUNK_LOGITS_TO_INPUT x (n_rows x hidden) elements, rounded down to a
    multiple of CHUNK_ROW_MULTIPLE, at least one multiple, at most n_rows.
    E.g. (8192, 4096, 128256) -> 512 rows: 125 MiB of bf16 logits."""
    rows = CHUNK_LOGITS_TO_INPUT * n_rows * hidden // max(vocab, 1)
    rows = max(CHUNK_ROW_MULTIPLE, rows // CHUNK_ROW_MULTIPLE * CHUNK_ROW_MULTIPLE)
    return max(1, min(n_rows, rows))


def _accumulate_weight_grad(
    grad_weight: torch.Tensor, dlogits: torch.Tensor, input_chunk: torch.Tensor, first: bool, slice_rows: int
) -> None:
    """grad_weight (+)= dlogits.T @ input_chunk, without a (V, H) temporary.

    In the GEMM dtype cuBLAS accumulates straight into grad_weight. In another
    accum dtype the product is formed a vocabulary slice at a time (at most one
    chunk of logits worth of elements) and added in that dtype."""
    if grad_weight.dtype == dlogits.dtype:
        if first:
            torch.mm(dlogits.t(), input_chunk, out=grad_weight)
        else:
            grad_weight.addmm_(dlogits.t(), input_chunk)
        return
    for start in range(0, grad_weight.shape[0], slice_rows):
        product = torch.mm(dlogits[:, start : start + slice_rows].t(), input_chunk)
        if first:
            grad_weight[start : start + slice_rows].copy_(product)
        else:
            grad_weight[start : start + slice_rows].add_(product)


def _run_chunks(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    target: torch.Tensor,
    ce_weight: torch.Tensor | None,
    divisors: torch.Tensor,
    loss_rows: torch.Tensor,
    options: dict[str, Any],
    want_grads: tuple[bool, bool, bool],
    accum_dtype: torch.dtype,
    z_rows: torch.Tensor | None = None,
    predicted: torch.Tensor | None = None,
    row_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """One walk over the token chunks: per-row losses into ``loss_rows`` (and
    ``z_rows`` / ``predicted``), and the requested (dinput, dweight, dbias),
    each row's gradient multiplied by ``row_scale`` when given."""
    n_rows, hidden = x.shape
    vocab = weight.shape[0]
    want_input, want_weight, want_bias = want_grads
    write_grad = any(want_grads)
    rows_per_chunk = chunk_rows(n_rows, hidden, vocab)
    grad_input = torch.empty_like(x) if want_input else None
    # The first chunk overwrites grad_weight, so only an empty batch needs zeros.
    allocate = torch.empty if n_rows > 0 else torch.zeros
    grad_weight = allocate(weight.shape, dtype=accum_dtype, device=x.device) if want_weight else None
    grad_bias = torch.zeros(vocab, dtype=accum_dtype, device=x.device) if want_bias else None
    logits_buffer = torch.empty(min(rows_per_chunk, n_rows), vocab, dtype=x.dtype, device=x.device)
    slice_rows = max(1, rows_per_chunk * vocab // max(hidden, 1))
    for start in range(0, n_rows, rows_per_chunk):
        end = min(start + rows_per_chunk, n_rows)
        input_chunk = x[start:end]
        logits = logits_buffer[: end - start]
        if bias is None:
            torch.mm(input_chunk, weight.t(), out=logits)
        else:
            torch.addmm(bias, input_chunk, weight.t(), out=logits)
        cross_entropy_rows(
            logits,
            target[start:end],
            ce_weight,
            divisors,
            loss_rows[start:end],
            grad=logits if write_grad else None,
            z_rows=z_rows[start:end] if z_rows is not None else None,
            predicted=predicted[start:end] if predicted is not None else None,
            **options,
        )
        if not write_grad:
            continue
        if row_scale is not None:
            scale_rows_(logits, row_scale[start:end])
        if grad_input is not None:
            torch.mm(logits, weight, out=grad_input[start:end])
        if grad_weight is not None:
            _accumulate_weight_grad(grad_weight, logits, input_chunk, start == 0, slice_rows)
        if grad_bias is not None:
            grad_bias += logits.sum(dim=0, dtype=accum_dtype)
    return grad_input, grad_weight, grad_bias


def _gemm_dtype(input: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype of the logits GEMM: autocast's when it is on (what a plain
    matmul would use in its place), else the promoted dtype of the operands."""
    device_type = input.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return torch.promote_types(input.dtype, weight.dtype)


class FusedLinearCrossEntropyFunction(torch.autograd.Function):
    """Triton fused linear cross-entropy with the options of
    ``LigerFusedLinearCrossEntropyFunction``. The GEMMs run in autocast's dtype
    when autocast is on, else in the promoted dtype of input and weight;
    gradients come back in each argument's own dtype."""

    @staticmethod
    def forward(
        ctx: Any,
        input: torch.Tensor,
        weight: torch.Tensor,
        target: torch.Tensor,
        bias: torch.Tensor | None = None,
        ce_weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        lse_square_scale: float = 0.0,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
        softcap: float | None = None,
        return_z_loss: bool = False,
        accum_dtype: torch.dtype | None = None,
        use_token_scaling: bool = False,
        return_token_accuracy: bool = False,
        return_predicted_tokens: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        compute_dtype = _gemm_dtype(input, weight)
        x = input.to(compute_dtype)
        w = weight.to(compute_dtype)
        b = bias.to(compute_dtype) if bias is not None else None
        n_rows = x.shape[0]
        rows_dtype = torch.float64 if compute_dtype == torch.float64 else torch.float32
        options = {
            "ignore_index": ignore_index,
            "lse_square_scale": lse_square_scale,
            "label_smoothing": label_smoothing,
            "softcap": softcap,
            "token_scaling": use_token_scaling,
        }
        needed = grads_wanted(ctx)
        want_grads = (needed[0], needed[1], bias is not None and needed[3])
        per_row_grad = reduction == "none"
        loss_rows = torch.empty(n_rows, dtype=rows_dtype, device=x.device)
        z_rows = torch.empty_like(loss_rows) if return_z_loss else None
        want_predicted = return_token_accuracy or return_predicted_tokens
        predicted = torch.empty(n_rows, dtype=torch.int64, device=x.device) if want_predicted else None
        divisors = loss_divisors(target, ce_weight, ignore_index, reduction, rows_dtype)
        grads = _run_chunks(
            x,
            w,
            b,
            target,
            ce_weight,
            divisors,
            loss_rows,
            options,
            (False, False, False) if per_row_grad else want_grads,
            accum_dtype or weight.dtype,
            z_rows=z_rows,
            predicted=predicted,
        )
        ctx.input_dtypes = (input.dtype, weight.dtype, bias.dtype if bias is not None else None)
        ctx.per_row_grad = per_row_grad
        if per_row_grad:
            ctx.options = options
            ctx.want_grads = want_grads
            ctx.accum_dtype = accum_dtype or weight.dtype
            ctx.save_for_backward(x, w, b, target, ce_weight, divisors)
        else:
            # Kept on ctx, not saved: backward scales these buffers in place and
            # hands them on (a leaf's .grad takes the storage, no copy).
            ctx.grad_buffers = grads

        loss = reduce_rows(loss_rows, reduction).to(input.dtype)
        z_loss = reduce_rows(z_rows, reduction).to(input.dtype) if z_rows is not None else None
        token_accuracy = accuracy(predicted, target, ignore_index) if return_token_accuracy else None
        predicted = predicted if return_predicted_tokens else None
        extras = (z_loss, token_accuracy, predicted)
        ctx.mark_non_differentiable(*[extra for extra in extras if extra is not None])
        return loss, *extras

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, *unused: Any) -> tuple[Any, ...]:
        if ctx.per_row_grad:
            x, w, b, target, ce_weight, divisors = ctx.saved_tensors
            scratch_rows = torch.empty(x.shape[0], dtype=divisors.dtype, device=x.device)
            grads = _run_chunks(
                x,
                w,
                b,
                target,
                ce_weight,
                divisors,
                scratch_rows,
                ctx.options,
                ctx.want_grads,
                ctx.accum_dtype,
                row_scale=grad_loss,
            )
        else:
            warn_if_repeated(ctx, "fused_linear_cross_entropy")
            grads = tuple(
                scale_rows_(grad.view(-1, grad.shape[-1]), grad_loss).view(grad.shape) if grad is not None else None
                for grad in ctx.grad_buffers
            )
        grad_input, grad_weight, grad_bias = (
            alias(grad.to(dtype)) if grad is not None else None for grad, dtype in zip(grads, ctx.input_dtypes)
        )
        return (grad_input, grad_weight, None, grad_bias, *([None] * 11))
