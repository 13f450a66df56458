"""Cross-entropy over a vocabulary on the NPU, in two passes over UB-sized blocks
(math: :mod:`liger_kernel.ops.cross_entropy`).

Each row's loss and gradient are stored already divided by the reduction's
divisors (D_ce, D_z) and, with token scaling (the fused linear
cross-entropy's option), multiplied by the detached target probability k_i.

NPU constraints answered: a vocabulary row (32k-256k logits) never fits the
192 KiB unified buffer, so each row is walked in ``BLOCK``-wide blocks sized
by the planner (fp32 working tiles plus double-buffered DMA tiles): pass 1
keeps an online max / sum-exp, the argmax and the smoothing sums; pass 2
recomputes p_j from lse and writes the gradient. One program per vector core
loops over the rows, so a batch of any length stays within the 65535-program
grid. The loss Function runs pass 1 alone in forward and both passes in
backward, so the logits are unchanged until backward. The gradient goes to
``GRAD``: over the logits themselves when the contract allows it (a non-leaf input, see ``LigerCrossEntropyFunction.overwrites``;
pass 2 reads each element before writing it), else a new buffer; the fused
linear cross-entropy passes its own chunk of logits. tanh is built from tl.exp (no libdevice).
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.losses import loss_divisors, reduce_rows, token_accuracy
from liger_kernel.ops._contract import mark_overwritten, overwritable
from liger_kernel.ops.cross_entropy import loss_dtype
from liger_kernel_ascend.ops._common import as_rows, row_plan
from liger_kernel_ascend.ops.gates import tanh


@triton.jit
def _capped(raw, softcap, HAS_SOFTCAP: tl.constexpr):
    if HAS_SOFTCAP:
        return softcap * tanh(raw / softcap)
    else:
        return raw


@triton.jit
def _pass1_block(
    x_row, CLASS_W, start, n_cols, softcap, run_max, run_sum, best, best_index, wx_sum, w_sum,
    HAS_WEIGHT: tl.constexpr, HAS_SOFTCAP: tl.constexpr, HAS_SMOOTHING: tl.constexpr, WRITE_PRED: tl.constexpr,
    TAIL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Fold one block of the row into pass 1's running statistics. Only the
    ``TAIL`` block is masked: a full block has no lane compare (the vector
    cores have no integer compare: each one runs scalar, lane by lane)."""
    cols = tl.arange(0, BLOCK)
    if TAIL:
        mask = start + cols < n_cols
        # -inf lanes drop out of the max and the sum of exp
        raw = tl.load(x_row + start + cols, mask=mask, other=float("-inf")).to(tl.float32)
    else:
        raw = tl.load(x_row + start + cols).to(tl.float32)
    if WRITE_PRED:
        block_best = tl.max(raw, axis=0)
        first = start + tl.min(tl.where(raw == block_best, cols, BLOCK), axis=0)
        best_index = tl.where(block_best > best, first.to(tl.int64), best_index)
        best = tl.maximum(best, block_best)
    x = _capped(raw, softcap, HAS_SOFTCAP)
    if TAIL and HAS_SOFTCAP:
        x = tl.where(mask, x, float("-inf"))  # the cap maps -inf to -softcap
    new_max = tl.maximum(run_max, tl.max(x, axis=0))
    run_sum = run_sum * tl.exp(run_max - new_max) + tl.sum(tl.exp(x - new_max), axis=0)
    run_max = new_max
    if HAS_SMOOTHING:
        if TAIL:
            x = tl.where(mask, x, 0.0)
        if HAS_WEIGHT:
            if TAIL:
                w = tl.load(CLASS_W + start + cols, mask=mask, other=0.0).to(tl.float32)
            else:
                w = tl.load(CLASS_W + start + cols).to(tl.float32)
            wx_sum += tl.sum(w * x, axis=0)
            w_sum += tl.sum(w, axis=0)
        else:
            wx_sum += tl.sum(x, axis=0)
    return run_max, run_sum, best, best_index, wx_sum, w_sum


@triton.jit
def _pass2_block(
    x_row, g_row, CLASS_W, start, n_cols, target, lse, p_coef, target_coef, smooth_coef, softcap,
    HAS_WEIGHT: tl.constexpr, HAS_SOFTCAP: tl.constexpr, HAS_SMOOTHING: tl.constexpr,
    TAIL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Write the gradient of one block; the [j == t] term is a scalar branch
    taken by the one block that holds the target."""
    cols = tl.arange(0, BLOCK)
    if TAIL:
        mask = start + cols < n_cols
        raw = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
    else:
        raw = tl.load(x_row + start + cols).to(tl.float32)
    x = _capped(raw, softcap, HAS_SOFTCAP)
    grad = tl.exp(x - lse) * p_coef
    if (target >= start) & (target < start + BLOCK):
        grad -= tl.where(cols == target - start, target_coef, 0.0)
    if HAS_SMOOTHING:
        if HAS_WEIGHT:
            if TAIL:
                w = tl.load(CLASS_W + start + cols, mask=mask, other=0.0).to(tl.float32)
            else:
                w = tl.load(CLASS_W + start + cols).to(tl.float32)
            grad -= smooth_coef * w
        else:
            grad -= smooth_coef
    if HAS_SOFTCAP:
        capped = x / softcap
        grad *= 1.0 - capped * capped
    if TAIL:
        tl.store(g_row + start + cols, grad.to(g_row.dtype.element_ty), mask=mask)
    else:
        tl.store(g_row + start + cols, grad.to(g_row.dtype.element_ty))


@triton.jit
def _cross_entropy_kernel(
    X,
    x_stride,
    T,
    t_stride,
    CLASS_W,
    DIVISORS,
    LOSS,
    Z,
    PRED,
    GRAD,
    grad_stride,
    n_rows,
    n_cols,
    ignore_index,
    lse_square_scale,
    label_smoothing,
    softcap,
    HAS_WEIGHT: tl.constexpr,
    HAS_SOFTCAP: tl.constexpr,
    HAS_SMOOTHING: tl.constexpr,
    HAS_Z: tl.constexpr,
    TOKEN_SCALING: tl.constexpr,
    WRITE_Z: tl.constexpr,
    WRITE_PRED: tl.constexpr,
    WRITE_GRAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    cols = tl.arange(0, BLOCK)
    ce_divisor = tl.load(DIVISORS)
    z_divisor = tl.load(DIVISORS + 1)
    smooth_per_class = label_smoothing / n_cols
    # blocks below full_end are whole; one masked tail block covers the rest
    full_end = n_cols // BLOCK * BLOCK
    for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0)):
        row64 = tl.cast(row, tl.int64)
        x_row = X + row64 * x_stride
        g_row = GRAD + row64 * grad_stride
        target = tl.load(T + row64 * t_stride).to(tl.int64)
        if target == ignore_index:
            tl.store(LOSS + row64, 0.0)
            if WRITE_Z:
                tl.store(Z + row64, 0.0)
            if WRITE_PRED:
                tl.store(PRED + row64, -1)
            if WRITE_GRAD:
                zeros = tl.zeros([BLOCK], tl.float32).to(GRAD.dtype.element_ty)
                for start in tl.range(0, full_end, BLOCK):
                    tl.store(g_row + start + cols, zeros)
                if full_end < n_cols:
                    tl.store(g_row + full_end + cols, zeros, mask=full_end + cols < n_cols)
        else:
            # pass 1: online max and sum of exp, argmax, smoothing sums
            run_max = tl.full([], float("-inf"), tl.float32)
            run_sum = tl.zeros([], tl.float32)
            best = tl.full([], float("-inf"), tl.float32)
            best_index = tl.zeros([], tl.int64)
            wx_sum = tl.zeros([], tl.float32)
            w_sum = tl.zeros([], tl.float32)
            for start in tl.range(0, full_end, BLOCK):
                run_max, run_sum, best, best_index, wx_sum, w_sum = _pass1_block(
                    x_row, CLASS_W, start, n_cols, softcap, run_max, run_sum, best, best_index, wx_sum, w_sum,
                    HAS_WEIGHT, HAS_SOFTCAP, HAS_SMOOTHING, WRITE_PRED, False, BLOCK,
                )  # fmt: skip
            if full_end < n_cols:
                run_max, run_sum, best, best_index, wx_sum, w_sum = _pass1_block(
                    x_row, CLASS_W, full_end, n_cols, softcap, run_max, run_sum, best, best_index, wx_sum, w_sum,
                    HAS_WEIGHT, HAS_SOFTCAP, HAS_SMOOTHING, WRITE_PRED, True, BLOCK,
                )  # fmt: skip
            if not HAS_WEIGHT:
                w_sum += n_cols
            lse = run_max + tl.log(run_sum)
            in_range = (target >= 0) & (target < n_cols)
            x_t = _capped(tl.load(x_row + target, mask=in_range, other=0.0).to(tl.float32), softcap, HAS_SOFTCAP)
            if HAS_WEIGHT:
                w_t = tl.load(CLASS_W + target, mask=in_range, other=0.0).to(tl.float32)
            else:
                w_t = tl.full([], 1.0, tl.float32)
            # a target outside the vocabulary: NaN loss and gradient (see the op contract)
            w_t = tl.where(in_range, w_t, float("nan"))
            ce = (1.0 - label_smoothing) * w_t * (lse - x_t)
            if HAS_SMOOTHING:
                ce += smooth_per_class * (w_sum * lse - wx_sum)
            z = tl.zeros([], tl.float32)
            if HAS_Z:
                z = lse_square_scale * lse * lse
            k = tl.full([], 1.0, tl.float32)
            if TOKEN_SCALING:
                k = tl.exp(x_t - lse)
            tl.store(LOSS + row64, k * (ce / ce_divisor + z / z_divisor))
            if WRITE_Z:
                tl.store(Z + row64, k * z / z_divisor)
            if WRITE_PRED:
                tl.store(PRED + row64, best_index)
            if WRITE_GRAD:
                # pass 2: grad_j = p_j * p_coef - smooth_coef * w_j - [j == t] * target_coef
                target_coef = k * (1.0 - label_smoothing) * w_t / ce_divisor
                smooth_coef = k * smooth_per_class / ce_divisor
                p_coef = target_coef + smooth_coef * w_sum
                if HAS_Z:
                    p_coef += k * 2.0 * lse_square_scale * lse / z_divisor
                for start in tl.range(0, full_end, BLOCK):
                    _pass2_block(
                        x_row, g_row, CLASS_W, start, n_cols, target, lse, p_coef, target_coef, smooth_coef, softcap,
                        HAS_WEIGHT, HAS_SOFTCAP, HAS_SMOOTHING, False, BLOCK,
                    )  # fmt: skip
                if full_end < n_cols:
                    _pass2_block(
                        x_row, g_row, CLASS_W, full_end, n_cols, target, lse, p_coef, target_coef, smooth_coef,
                        softcap, HAS_WEIGHT, HAS_SOFTCAP, HAS_SMOOTHING, True, BLOCK,
                    )  # fmt: skip


def cross_entropy_rows(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_weight: torch.Tensor | None,
    divisors: torch.Tensor,
    *,
    ignore_index: int,
    lse_square_scale: float,
    label_smoothing: float,
    softcap: float | None,
    grad: torch.Tensor | None,
    want_z: bool,
    want_predicted: bool,
    token_scaling: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Run the kernel over 2-D ``logits`` (unit column stride).

    Returns per-row (loss, z-loss or None, argmax or None), each already
    divided by ``divisors``; with ``grad`` (same shape as logits, may be
    ``logits`` itself) the gradient is written there."""
    n_rows, n_cols = logits.shape
    device = logits.device
    loss = torch.zeros(n_rows, dtype=torch.float32, device=device)
    z = torch.zeros(n_rows, dtype=torch.float32, device=device) if want_z else None
    predicted = torch.empty(n_rows, dtype=torch.int64, device=device) if want_predicted else None
    if n_rows == 0:
        return loss, z, predicted
    weight = class_weight.contiguous() if class_weight is not None else None
    variant = dict(
        HAS_WEIGHT=weight is not None, HAS_SOFTCAP=softcap is not None, HAS_SMOOTHING=label_smoothing > 0,
        HAS_Z=lse_square_scale != 0, TOKEN_SCALING=token_scaling,
        WRITE_Z=want_z, WRITE_PRED=want_predicted, WRITE_GRAD=grad is not None,
    )  # fmt: skip
    plan = row_plan(_cross_entropy_kernel, n_rows, n_cols, logits.dtype, device, variant, max_rows_per_step=1)
    _cross_entropy_kernel[(plan.grid,)](
        logits, logits.stride(0), target, target.stride(0),
        weight if weight is not None else loss, divisors.to(torch.float32),
        loss, z if z is not None else loss, predicted if predicted is not None else loss,
        grad if grad is not None else logits, grad.stride(0) if grad is not None else 0,
        n_rows, n_cols, ignore_index, float(lse_square_scale), float(label_smoothing),
        float(softcap) if softcap is not None else 1.0,
        **variant, BLOCK=plan.block,
    )  # fmt: skip
    return loss, z, predicted


class CrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        _input: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        ignore_index: int = -100,
        lse_square_scale: float = 0.0,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
        softcap: float | None = None,
        return_z_loss: bool = False,
        return_token_accuracy: bool = False,
        return_predicted_tokens: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        input = _input  # 0.8.5's name in the signature, the usual one below
        logits = as_rows(input)
        divisors = loss_divisors(target, weight, ignore_index, reduction)
        options = dict(ignore_index=ignore_index, lse_square_scale=lse_square_scale,
                       label_smoothing=label_smoothing, softcap=softcap)  # fmt: skip
        loss_rows, z_rows, predicted = cross_entropy_rows(
            logits, target, weight, divisors, grad=None, want_z=return_z_loss,
            want_predicted=return_token_accuracy or return_predicted_tokens, **options,
        )  # fmt: skip
        if ctx.needs_input_grad[0]:
            # The contract lets a non-leaf input take its own gradient in backward
            # (``overwrites``): on the NPU that saves a (rows, V) buffer, the
            # largest of a training step. The copy as_rows may have made is ours.
            ctx.overwrite = logits.data_ptr() != input.data_ptr() or (
                overwritable(ctx, input) and logits.is_contiguous()
            )
            ctx.options = options
            ctx.input_shape = input.shape
            ctx.save_for_backward(logits, target, weight, divisors)
        loss = reduce_rows(loss_rows, reduction).to(loss_dtype(input.dtype))
        z_loss = reduce_rows(z_rows, reduction).to(loss_dtype(input.dtype)) if z_rows is not None else None
        accuracy = token_accuracy(predicted, target, ignore_index) if return_token_accuracy else None
        predicted = predicted if return_predicted_tokens else None
        extras = (z_loss, accuracy, predicted)
        ctx.mark_non_differentiable(*[extra for extra in extras if extra is not None])
        return loss, *extras

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, *unused: Any) -> tuple[Any, ...]:
        logits, target, weight, divisors = ctx.saved_tensors
        grad = logits if ctx.overwrite else torch.empty_like(logits, memory_format=torch.contiguous_format)
        # The forward kept no per-row statistics (its UB plan has no room to
        # spare for them), so the gradient pass recomputes lse. A scalar
        # grad_output is folded into the divisors: gradient = g * formula / D.
        per_row = grad_loss.dim() > 0
        if not per_row:
            divisors = divisors / grad_loss.to(divisors.dtype)
        cross_entropy_rows(
            logits, target, weight, divisors, grad=grad, want_z=False, want_predicted=False, **ctx.options
        )  # fmt: skip
        if per_row:
            grad.mul_(grad_loss.reshape(-1, 1).to(grad.dtype))
        elif grad is logits:
            mark_overwritten(logits)
        return (grad.view(ctx.input_shape), *([None] * 10))
