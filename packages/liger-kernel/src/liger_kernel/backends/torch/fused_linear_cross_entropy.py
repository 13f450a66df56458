"""Fused linear cross-entropy in pure PyTorch (math and accumulation rule:
:mod:`liger_kernel.ops.fused_linear_cross_entropy`).

Layout: the shared chunk walk (:func:`liger_kernel.losses.walk_linear_chunks`)
with :func:`liger_kernel.backends.torch.cross_entropy.loss_and_grad` as its row
kernel. Each chunk holds at most CHUNK_ELEMENTS logits (see
:func:`~liger_kernel.backends.torch.cross_entropy.chunk_rows`), formed by a
GEMM in the inputs' dtype and kept in the compute dtype (fp32, fp64 for fp64
inputs), where the loss and dlogits are computed. Every row is walked (no
gathering of kept rows: its data-dependent sizes would stop torch.compile).

"mean" and "sum" form the gradients in forward, and backward scales them by
the scalar incoming gradient. "none" has one incoming gradient per row, which
cannot be applied to an accumulated dweight afterwards, so backward walks the
chunks again with each row's gradient scaled.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from liger_kernel.backends.torch._common import compute_dtype
from liger_kernel.backends.torch.cross_entropy import chunk_rows, extras, loss_and_grad, row_losses
from liger_kernel.losses import LinearGrads, RowLoss, loss_divisors, reduce_rows, walk_linear_chunks
from liger_kernel.ops.cross_entropy import loss_dtype
from liger_kernel.ops.fused_linear_cross_entropy import accumulation_dtype


class LossOptions(NamedTuple):
    ignore_index: int
    lse_square_scale: float
    label_smoothing: float
    softcap: float | None
    use_token_scaling: bool


def row_kernel(class_weight: torch.Tensor | None, options: LossOptions, divisors: torch.Tensor) -> RowLoss:
    """:func:`loss_and_grad` in the shape the shared walk calls."""

    def row_loss(logits, target, loss, z, predicted, write_grad):
        part = loss_and_grad(
            logits,
            target,
            class_weight,
            options.ignore_index,
            options.lse_square_scale,
            options.label_smoothing,
            options.softcap,
            divisors[0],
            divisors[1],
            write_grad,
            token_scaling=options.use_token_scaling,
        )
        loss_i, z_i = row_losses(part, divisors)
        loss.copy_(loss_i)
        if z is not None:
            z.copy_(z_i)
        if predicted is not None:
            predicted.copy_(part.predicted)

    return row_loss


def walk(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None,
    ce_weight: torch.Tensor | None,
    options: LossOptions,
    divisors: torch.Tensor,
    accum_dtype: torch.dtype,
    needs: tuple[bool, bool, bool],
    rows: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None],
    row_scale: torch.Tensor | None = None,
) -> LinearGrads:
    """Loss rows into ``rows`` (loss, z, predicted) and the requested (dinput, dweight, dbias)."""
    math_dtype = compute_dtype(input, weight, bias, ce_weight)
    matmul_dtype = torch.promote_types(input.dtype, weight.dtype)
    class_weight = ce_weight.to(math_dtype) if ce_weight is not None else None
    loss_rows, z_rows, predicted = rows
    return walk_linear_chunks(
        input.to(matmul_dtype), weight.to(matmul_dtype), bias.to(matmul_dtype) if bias is not None else None,
        target, row_kernel(class_weight, options, divisors),
        rows_per_chunk=chunk_rows(weight.shape[0]), ignore_index=options.ignore_index,
        want_grads=(needs[0], needs[1], needs[2] and bias is not None), accum_dtype=accum_dtype,
        loss_rows=loss_rows, z_rows=z_rows, predicted=predicted, row_scale=row_scale,
        logits_dtype=math_dtype, skip_ignored=False,
    )  # fmt: skip


class FusedLinearCrossEntropyFunction(torch.autograd.Function):
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
        accum_dtype = accumulation_dtype(weight.dtype, accum_dtype)
        math_dtype = compute_dtype(input, weight, bias, ce_weight)
        options = LossOptions(ignore_index, lse_square_scale, label_smoothing, softcap, use_token_scaling)
        class_weight = ce_weight.to(math_dtype) if ce_weight is not None else None
        divisors = loss_divisors(target, class_weight, ignore_index, reduction, math_dtype)
        # needs_input_grad covers only the arguments actually passed; bias may be left at its default.
        needs_grad = ctx.needs_input_grad
        needs = (needs_grad[0], needs_grad[1], len(needs_grad) > 3 and needs_grad[3])
        # "none" gets its gradients in backward, where each row's incoming gradient is known.
        grads_now = needs if reduction != "none" else (False, False, False)
        n_rows = input.shape[0]
        loss_rows = torch.empty(n_rows, dtype=math_dtype, device=input.device)
        z_rows = torch.empty_like(loss_rows)
        predicted = torch.empty(n_rows, dtype=torch.int64, device=input.device)
        grads = walk(
            input, weight, target, bias, ce_weight, options, divisors, accum_dtype, grads_now,
            (loss_rows, z_rows, predicted),
        )  # fmt: skip
        out_dtype = loss_dtype(input.dtype)
        loss, z_loss = reduce_rows(loss_rows, reduction).to(out_dtype), reduce_rows(z_rows, reduction).to(out_dtype)
        z_out, accuracy, predicted_out = extras(
            z_loss, predicted, target, ignore_index, return_z_loss, return_token_accuracy, return_predicted_tokens
        )
        ctx.mark_non_differentiable(*(t for t in (z_out, accuracy, predicted_out) if t is not None))
        ctx.reduction = reduction
        ctx.dtypes = (input.dtype, weight.dtype, bias.dtype if bias is not None else None)
        if reduction == "none":
            ctx.save_for_backward(input, weight, target, bias, ce_weight, divisors)
            ctx.replay = (options, accum_dtype, needs)
        else:
            ctx.save_for_backward(*grads)
        return loss, z_out, accuracy, predicted_out

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, *_extras: Any) -> tuple[Any, ...]:
        if ctx.reduction == "none":
            input, weight, target, bias, ce_weight, divisors = ctx.saved_tensors
            options, accum_dtype, needs = ctx.replay
            scratch = torch.empty(input.shape[0], dtype=divisors.dtype, device=input.device)
            grads = walk(
                input, weight, target, bias, ce_weight, options, divisors, accum_dtype, needs,
                (scratch, None, None), row_scale=grad_loss,
            )  # fmt: skip
        else:
            scale = grad_loss.to(compute_dtype(*ctx.saved_tensors))
            grads = tuple(g * scale if g is not None else None for g in ctx.saved_tensors)
        dinput, dweight, dbias = (g.to(dtype) if g is not None else None for g, dtype in zip(grads, ctx.dtypes))
        return dinput, dweight, None, dbias, *([None] * 11)
