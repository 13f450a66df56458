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

Rows whose target is ignored are left out of the chunks (SKIP_IGNORED_ROWS):
their loss and gradient are zero, so they need no GEMM. Counting the kept rows
is the one host synchronization of a walk; while the stream is being captured
into a graph (CUDA graphs, torch.compile's "reduce-overhead"), where nothing
may synchronize, every row is walked instead.

Memory: one chunk of logits (the profile's ``lm_head_chunk_ratio`` times the
size of input, see :func:`chunk_rows`) and one gathered chunk of input, dinput, and dweight /
dbias in accum_dtype (weight's dtype when None; returned in weight's dtype). use_token_scaling multiplies each row's
loss (and its gradient) by the detached softmax probability of its target.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.dispatch import device_profile
from liger_kernel.ops.cross_entropy import loss_dtype
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

#: Chunk rows are rounded down to a multiple of this, for GEMM tiles.
CHUNK_ROW_MULTIPLE = 64
#: Rows with an ignored target skip all three GEMMs and the loss kernel. It
#: costs one host synchronization per walk (the count of kept rows sizes the
#: GEMMs) and saves their share of the work: 1/7 at the benchmark shape.
SKIP_IGNORED_ROWS = True


def chunk_rows(n_rows: int, hidden: int, vocab: int, ratio: int) -> int:
    """Rows per chunk: the chunk's logits (rows x vocab) stay within ``ratio``
    x (n_rows x hidden) elements (the profile's ``lm_head_chunk_ratio``),
    rounded down to a multiple of CHUNK_ROW_MULTIPLE, at least one multiple,
    at most n_rows. E.g. (8192, 4096, 128256) at ratio 2 -> 512 rows: 125 MiB
    of bf16 logits."""
    rows = ratio * n_rows * hidden // max(vocab, 1)
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


def stream_capturing(device: torch.device) -> bool:
    """Whether the current stream of ``device`` is being captured into a graph
    (``torch.cuda``'s probe, or the same one of another device module)."""
    probe = getattr(getattr(torch, device.type, None), "is_current_stream_capturing", None)
    return bool(probe()) if probe is not None else False


def kept_rows(target: torch.Tensor, ignore_index: int) -> torch.Tensor | None:
    """Indices of the rows whose target is not ignored, or None when no row is
    ignored (or SKIP_IGNORED_ROWS is off, or a graph capture forbids the
    count's host synchronization: the GEMM sizes depend on the count)."""
    if not SKIP_IGNORED_ROWS or stream_capturing(target.device):
        return None
    rows = torch.nonzero(target != ignore_index).squeeze(1)
    return None if rows.numel() == target.shape[0] else rows


def _take(values: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
    """The selected rows: a view for a slice, a copy for an index tensor."""
    return values[rows] if isinstance(rows, slice) else values.index_select(0, rows)


def _put(values: torch.Tensor, rows: slice | torch.Tensor, chunk: torch.Tensor) -> None:
    """Write back what _take gave (a slice's view already is values itself)."""
    if not isinstance(rows, slice):
        values.index_copy_(0, rows, chunk)


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
    each row's gradient multiplied by ``row_scale`` when given.

    Rows with an ignored target contribute nothing (loss 0, predicted -1, zero
    gradient), so with SKIP_IGNORED_ROWS only the kept rows are chunked,
    gathered a chunk at a time, and the results scattered back."""
    n_rows, hidden = x.shape
    vocab = weight.shape[0]
    want_input, want_weight, want_bias = want_grads
    write_grad = any(want_grads)
    rows_per_chunk = chunk_rows(n_rows, hidden, vocab, device_profile(x.device).lm_head_chunk_ratio)
    kept = kept_rows(target, options["ignore_index"])
    if kept is None:
        n_kept = n_rows
        selections = [slice(start, min(start + rows_per_chunk, n_rows)) for start in range(0, n_rows, rows_per_chunk)]
    else:
        n_kept = kept.numel()
        selections = [kept[start : start + rows_per_chunk] for start in range(0, n_kept, rows_per_chunk)]
        loss_rows.zero_()
        for rows, fill in ((z_rows, 0), (predicted, -1)):
            if rows is not None:
                rows.fill_(fill)
    grad_input = None
    if want_input:
        grad_input = torch.empty_like(x) if kept is None else torch.zeros_like(x)
    # The first chunk overwrites grad_weight, so only a walk without chunks needs zeros.
    allocate = torch.empty if n_kept > 0 else torch.zeros
    grad_weight = allocate(weight.shape, dtype=accum_dtype, device=x.device) if want_weight else None
    grad_bias = torch.zeros(vocab, dtype=accum_dtype, device=x.device) if want_bias else None
    logits_buffer = torch.empty(min(rows_per_chunk, max(n_kept, 1)), vocab, dtype=x.dtype, device=x.device)
    slice_rows = max(1, rows_per_chunk * vocab // max(hidden, 1))
    for index, rows in enumerate(selections):
        input_chunk = _take(x, rows)
        logits = logits_buffer[: input_chunk.shape[0]]
        if bias is None:
            torch.mm(input_chunk, weight.t(), out=logits)
        else:
            torch.addmm(bias, input_chunk, weight.t(), out=logits)
        chunk_outputs = {
            "loss": (loss_rows, _take(loss_rows, rows)),
            "z": (z_rows, _take(z_rows, rows) if z_rows is not None else None),
            "predicted": (predicted, _take(predicted, rows) if predicted is not None else None),
        }
        cross_entropy_rows(
            logits,
            _take(target, rows),
            ce_weight,
            divisors,
            chunk_outputs["loss"][1],
            grad=logits if write_grad else None,
            z_rows=chunk_outputs["z"][1],
            predicted=chunk_outputs["predicted"][1],
            **options,
        )
        for values, chunk in chunk_outputs.values():
            if values is not None:
                _put(values, rows, chunk)
        if not write_grad:
            del input_chunk
            continue
        if row_scale is not None:
            scale_rows_(logits, _take(row_scale, rows))
        if grad_weight is not None:
            _accumulate_weight_grad(grad_weight, logits, input_chunk, index == 0, slice_rows)
        if grad_bias is not None:
            grad_bias += logits.sum(dim=0, dtype=accum_dtype)
        if grad_input is not None:
            # a gathered input chunk is dead now: its buffer takes dinput
            torch.mm(logits, weight, out=grad_input[rows] if isinstance(rows, slice) else input_chunk)
            _put(grad_input, rows, input_chunk)
        # a gathered chunk is freed before the next one is gathered
        del input_chunk
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
    ``LigerFusedLinearCrossEntropyFunction``. The input is never written. The GEMMs run in autocast's dtype
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

        loss = reduce_rows(loss_rows, reduction).to(loss_dtype(input.dtype))
        z_loss = reduce_rows(z_rows, reduction).to(loss_dtype(input.dtype)) if z_rows is not None else None
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
