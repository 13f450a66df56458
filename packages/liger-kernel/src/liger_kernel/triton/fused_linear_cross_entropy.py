"""Fused linear cross-entropy, portable Triton: the GEMMs in torch, the loss in
:func:`liger_kernel.triton.cross_entropy.cross_entropy_rows` (math: the contract,
:mod:`liger_kernel.ops.fused_linear_cross_entropy`).

The walk over token chunks is the shared one
(:func:`liger_kernel.losses.walk_linear_chunks`): each chunk's logits are
formed in the GEMM dtype by cuBLAS (mm / addmm) into one reused buffer, and
the kernel writes dlogits over them, already divided by the reduction's
divisors (computed once on the device, no sync). With reduction "mean" or
"sum" all gradients are formed in forward, and backward multiplies them by
the scalar grad_output in place (a device-side no-op when it is 1); "none"
needs one grad_output per row, so backward walks the chunks again.

Rows whose target is ignored are left out of the chunks (SKIP_IGNORED_ROWS):
one host synchronization per walk, none while a graph is being captured.

Memory: one chunk of logits, sized by the device profile
(``lm_head_chunk_ratio`` times the input, see :func:`chunk_rows`), one
gathered chunk of input, dinput, and dweight / dbias in the contract's
accumulation dtype, with no (V, H) temporary.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.dispatch import device_profile
from liger_kernel.losses import chunk_rows, loss_divisors, reduce_rows, token_accuracy, walk_linear_chunks
from liger_kernel.ops.cross_entropy import loss_dtype
from liger_kernel.ops.fused_linear_cross_entropy import accumulation_dtype
from liger_kernel.triton.cross_entropy import (
    alias,
    cross_entropy_rows,
    grads_wanted,
    scale_rows_,
    warn_if_repeated,
)

#: Rows with an ignored target skip all three GEMMs and the loss kernel. It
#: costs one host synchronization per walk (the count of kept rows sizes the
#: GEMMs) and saves their share of the work: 1/7 at the benchmark shape.
SKIP_IGNORED_ROWS = True


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
    """The shared walk with this backend's row kernel and the profile's chunk size."""
    profile = device_profile(x.device)

    def row_loss(logits, target, loss, z, predicted, write_grad):
        cross_entropy_rows(
            logits, target, ce_weight, divisors, loss,
            grad=logits if write_grad else None, z_rows=z, predicted=predicted, **options,
        )  # fmt: skip

    rows = chunk_rows(
        x.shape[0],
        x.shape[1],
        weight.shape[0],
        profile.lm_head_chunk_ratio,
        profile.lm_head_row_multiple,
        profile.lm_head_min_rows,
    )
    return walk_linear_chunks(
        x, weight, bias, target, row_loss,
        rows_per_chunk=rows, ignore_index=options["ignore_index"], want_grads=want_grads,
        accum_dtype=accum_dtype, loss_rows=loss_rows, z_rows=z_rows, predicted=predicted,
        row_scale=row_scale, skip_ignored=SKIP_IGNORED_ROWS,
    )  # fmt: skip


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
        _input: torch.Tensor,
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
        input = _input  # 0.8.5's name in the signature, the usual one below
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
            accumulation_dtype(weight.dtype, accum_dtype),
            z_rows=z_rows,
            predicted=predicted,
        )
        ctx.input_dtypes = (input.dtype, weight.dtype, bias.dtype if bias is not None else None)
        ctx.per_row_grad = per_row_grad
        if per_row_grad:
            ctx.options = options
            ctx.want_grads = want_grads
            ctx.accum_dtype = accumulation_dtype(weight.dtype, accum_dtype)
            ctx.save_for_backward(x, w, b, target, ce_weight, divisors)
        else:
            # Kept on ctx, not saved: backward scales these buffers in place and
            # hands them on (a leaf's .grad takes the storage, no copy).
            ctx.grad_buffers = grads

        loss = reduce_rows(loss_rows, reduction).to(loss_dtype(input.dtype))
        z_loss = reduce_rows(z_rows, reduction).to(loss_dtype(input.dtype)) if z_rows is not None else None
        accuracy = token_accuracy(predicted, target, ignore_index) if return_token_accuracy else None
        predicted = predicted if return_predicted_tokens else None
        extras = (z_loss, accuracy, predicted)
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
