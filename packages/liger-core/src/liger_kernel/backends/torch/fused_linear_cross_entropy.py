"""Linear layer fused with cross-entropy (the LM head and its loss), in pure PyTorch.

    logits = input @ weight.T + bias        formed CHUNK by chunk, never whole
    loss   = cross_entropy(logits, target, ce_weight, ...)
per chunk of rows, with dlogits from
:func:`liger_kernel.backends.torch.cross_entropy.loss_and_grad` (the "mean"
divisors are the whole batch's, computed once up front):
    dinput[chunk] = dlogits @ weight
    dweight      += dlogits.T @ input[chunk]
    dbias        += sum over rows of dlogits
Chunks follow :func:`~liger_kernel.backends.torch.cross_entropy.chunk_rows`:
at most 2**24 logits (64 MiB in fp32) per chunk, whatever the vocabulary.
The matmuls run in the inputs' dtype; the logits, loss and dlogits in fp32
(float64 for float64 inputs). dweight and dbias are accumulated in
``accum_dtype`` (default: fp32 for half weights, else the weight's dtype) and
returned in the weight's and bias's dtypes. ``use_token_scaling`` multiplies
each row's loss (z-loss included) and its gradient by the detached predicted
probability of its target.

For "mean" and "sum" the gradients are computed in the forward pass and
backward scales them by the scalar incoming gradient. For "none" the incoming
gradient differs per row, which cannot be applied to an accumulated dweight
afterwards, so backward walks the chunks again with each row's gradient scaled.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from liger_kernel.backends.torch._common import compute_dtype
from liger_kernel.backends.torch.cross_entropy import (
    Divisors,
    divisors,
    extras,
    loss_and_grad,
    reduce_rows,
    row_chunks,
)
from liger_kernel.ops.cross_entropy import loss_dtype

HALF_DTYPES = (torch.float16, torch.bfloat16)


class LossOptions(NamedTuple):
    ignore_index: int
    lse_square_scale: float
    label_smoothing: float
    softcap: float | None
    use_token_scaling: bool


class Walk(NamedTuple):
    ce: torch.Tensor
    z: torch.Tensor
    predicted: torch.Tensor
    dinput: torch.Tensor | None
    dweight: torch.Tensor | None
    dbias: torch.Tensor | None


def walk_chunks(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None,
    ce_weight: torch.Tensor | None,
    options: LossOptions,
    divs: Divisors,
    accum_dtype: torch.dtype,
    needs: tuple[bool, bool, bool],
    row_scale: torch.Tensor | None = None,
) -> Walk:
    """Loss rows and the requested gradients (dinput, dweight, dbias), one chunk of rows at a time."""
    need_dinput, need_dweight, need_dbias = needs
    need_dbias = need_dbias and bias is not None
    need_grad = need_dinput or need_dweight or need_dbias
    math_dtype = compute_dtype(input, weight, bias, ce_weight)
    matmul_dtype = torch.promote_types(input.dtype, weight.dtype)
    x, w = input.to(matmul_dtype), weight.to(matmul_dtype)
    bias_wide = bias.to(math_dtype) if bias is not None else None
    class_weight = ce_weight.to(math_dtype) if ce_weight is not None else None
    n_rows, vocab = input.shape[0], weight.shape[0]
    device = input.device

    ce = torch.empty(n_rows, dtype=math_dtype, device=device)
    z = torch.empty_like(ce)
    predicted = torch.empty(n_rows, dtype=torch.int64, device=device)
    dinput = torch.empty(input.shape, dtype=input.dtype, device=device) if need_dinput else None
    dweight = torch.zeros(weight.shape, dtype=accum_dtype, device=device) if need_dweight else None
    dbias = torch.zeros(vocab, dtype=accum_dtype, device=device) if need_dbias else None

    for rows in row_chunks(n_rows, vocab):
        logits = (x[rows] @ w.T).to(math_dtype)
        if bias_wide is not None:
            logits += bias_wide
        part = loss_and_grad(
            logits,
            target[rows],
            class_weight,
            options.ignore_index,
            options.lse_square_scale,
            options.label_smoothing,
            options.softcap,
            divs.ce,
            divs.z,
            need_grad,
            token_scaling=options.use_token_scaling,
            row_scale=row_scale[rows] if row_scale is not None else None,
        )
        ce[rows], z[rows], predicted[rows] = part.ce, part.z, part.predicted
        if not need_grad:
            continue
        dlogits = part.grad.to(matmul_dtype)
        if dinput is not None:
            dinput[rows] = dlogits @ w
        if dweight is not None:
            dweight += (dlogits.T @ x[rows]).to(accum_dtype)
        if dbias is not None:
            dbias += part.grad.sum(dim=0).to(accum_dtype)
    return Walk(ce, z, predicted, dinput, dweight, dbias)


class FusedLinearCrossEntropyFunction(torch.autograd.Function):
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
        if accum_dtype is None:
            accum_dtype = torch.float32 if weight.dtype in HALF_DTYPES else weight.dtype
        math_dtype = compute_dtype(input, weight, bias, ce_weight)
        options = LossOptions(ignore_index, lse_square_scale, label_smoothing, softcap, use_token_scaling)
        class_weight = ce_weight.to(math_dtype) if ce_weight is not None else None
        divs = divisors(target, class_weight, ignore_index, reduction, math_dtype)
        # needs_input_grad covers only the arguments actually passed; bias may be left at its default.
        needs_grad = ctx.needs_input_grad
        needs = (needs_grad[0], needs_grad[1], len(needs_grad) > 3 and needs_grad[3])
        # "none" gets its gradients in backward, where each row's incoming gradient is known.
        grads_now = needs if reduction != "none" else (False, False, False)
        walk = walk_chunks(input, weight, target, bias, ce_weight, options, divs, accum_dtype, grads_now)

        loss, z_loss = reduce_rows(walk.ce, walk.z, reduction, divs, loss_dtype(input.dtype))
        z_out, accuracy, predicted_out = extras(
            z_loss, walk.predicted, target, divs.kept, return_z_loss, return_token_accuracy, return_predicted_tokens
        )
        ctx.mark_non_differentiable(*(t for t in (z_out, accuracy, predicted_out) if t is not None))
        ctx.reduction = reduction
        ctx.dtypes = (input.dtype, weight.dtype, bias.dtype if bias is not None else None)
        if reduction == "none":
            ctx.save_for_backward(input, weight, target, bias, ce_weight)
            ctx.replay = (options, divs, accum_dtype, needs)
        else:
            ctx.save_for_backward(walk.dinput, walk.dweight, walk.dbias)
        return loss, z_out, accuracy, predicted_out

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, *_extras: Any) -> tuple[Any, ...]:
        if ctx.reduction == "none":
            input, weight, target, bias, ce_weight = ctx.saved_tensors
            options, divs, accum_dtype, needs = ctx.replay
            walk = walk_chunks(
                input, weight, target, bias, ce_weight, options, divs, accum_dtype, needs, row_scale=grad_loss
            )
            grads = (walk.dinput, walk.dweight, walk.dbias)
        else:
            scale = grad_loss.to(compute_dtype(*ctx.saved_tensors))
            grads = tuple(g * scale if g is not None else None for g in ctx.saved_tensors)
        dinput, dweight, dbias = (g.to(dtype) if g is not None else None for g, dtype in zip(grads, ctx.dtypes))
        return dinput, dweight, None, dbias, *([None] * 11)
