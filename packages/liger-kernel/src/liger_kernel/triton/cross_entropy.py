"""Cross-entropy over a vocabulary as one persistent-grid Triton kernel
(math: :mod:`liger_kernel.ops.cross_entropy`).

The kernel stores each row's loss already divided by the reduction's
divisors (D_ce, D_z) and, with token scaling (the fused linear
cross-entropy's option), multiplied by the detached target probability; the
gradient is written in the form p_j * p_coef - smooth_coef * w_j - [j == t] *
target_coef (see ``_store_row_gradient``). A target outside [0, V) that is not
ignore_index makes its row NaN (the op contract says where it is an error).

Passes over the logits: the loss Function's forward reads each row once
(pass 1: online max / sum-exp, argmax, the smoothing sums) and stores its lse;
its backward reads the row again and writes the gradient with grad_output
folded in (``_cross_entropy_backward_kernel``). The fused linear
cross-entropy, which owns its chunk of logits, has the forward kernel write
the gradient in a second pass over the row instead (WRITE_GRAD).

Memory: as the op contract allows (``overwrites``), when the logits are a
non-leaf tensor that requires grad (the LM head's output, say) the backward
writes the gradient over their storage, so no (rows, V) buffer besides the
caller's logits ever exists, and moves their version counter: a use that
saved the logits for its own backward (or a second backward of this graph)
then raises instead of reading a gradient. Until backward the logits are
unchanged. Leaves, tensors that do not require grad and calls under
torch.no_grad() are never written.

All index arithmetic is int64: rows * V passes 2**31 for LLM vocabularies.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.losses import loss_divisors, reduce_rows, token_accuracy
from liger_kernel.ops._contract import mark_overwritten, overwritable
from liger_kernel.ops.cross_entropy import loss_dtype
from liger_kernel.triton.launch import as_rows, pipeline_stages, register_block

#: On-chip bytes budgeted per vocabulary element of a block (its loaded value
#: and the fp32 values derived from it, in registers and pipeline buffers). On
#: an H100 (227 KiB) this allows 16384-element blocks (the profile's max_block,
#: 32 warps). Measured there at (8192, 128256) bf16, forward + backward:
#: 16384 / 32 warps / 3 stages / one program per SM 1.93 ms, 4096 / 16 warps /
#: two per SM 2.23 ms, 2048 / 8 warps / four per SM 2.10-2.44 ms.
BYTES_PER_BLOCK_ELEMENT = 8


@triton.jit
def _softcapped(raw, softcap, HAS_SOFTCAP: tl.constexpr):
    if HAS_SOFTCAP:
        # tanh(y) = 2 * sigmoid(2y) - 1: tl.* math only, so the interpreter runs it too.
        return softcap * (2.0 * tl.sigmoid(2.0 * raw / softcap) - 1.0)
    else:
        return raw


@triton.jit
def _cross_entropy_kernel(
    logits_ptr,
    logits_row_stride,
    grad_ptr,
    grad_row_stride,
    target_ptr,
    target_stride,
    class_weight_ptr,
    divisors_ptr,
    loss_ptr,
    z_loss_ptr,
    predicted_ptr,
    lse_ptr,
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
    WRITE_GRAD: tl.constexpr,
    WRITE_Z: tl.constexpr,
    WRITE_PREDICTED: tl.constexpr,
    WRITE_LSE: tl.constexpr,
    TOKEN_SCALING: tl.constexpr,
    FP64: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    acc_dtype = tl.float64 if FP64 else tl.float32
    cols = tl.arange(0, BLOCK)
    ce_divisor = tl.load(divisors_ptr).to(acc_dtype)
    z_divisor = tl.load(divisors_ptr + 1).to(acc_dtype)
    smoothing_per_class = label_smoothing / n_cols
    for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0)):
        row64 = tl.cast(row, tl.int64)
        row_ptr = logits_ptr + row64 * logits_row_stride
        grad_row_ptr = grad_ptr + row64 * grad_row_stride
        target = tl.load(target_ptr + row64 * target_stride).to(tl.int64)
        if target == ignore_index:
            tl.store(loss_ptr + row64, 0.0)
            if WRITE_Z:
                tl.store(z_loss_ptr + row64, 0.0)
            if WRITE_PREDICTED:
                tl.store(predicted_ptr + row64, -1)
            if WRITE_LSE:
                tl.store(lse_ptr + row64, 0.0)
            if WRITE_GRAD:
                _store_zero_row(grad_row_ptr, n_cols, BLOCK)
        else:
            # Pass 1: running max and sum of exp, argmax, weighted sums for smoothing.
            running_max = tl.full([], float("-inf"), acc_dtype)
            running_sum = tl.zeros([], acc_dtype)
            best = tl.full([], float("-inf"), acc_dtype)
            best_index = tl.zeros([], tl.int64)
            weighted_x_sum = tl.zeros([], acc_dtype)
            weight_sum = tl.zeros([], acc_dtype)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                offsets = start + cols
                mask = offsets < n_cols
                raw = tl.load(row_ptr + offsets, mask=mask, other=float("-inf")).to(acc_dtype)
                if WRITE_PREDICTED:
                    # argmax of the raw logits: tanh is monotone, and raw values
                    # do not tie where the capped ones saturate.
                    block_best, block_index = tl.max(raw, axis=0, return_indices=True)
                    best_index = tl.where(block_best > best, start + block_index.to(tl.int64), best_index)
                    best = tl.maximum(best, block_best)
                x = tl.where(mask, _softcapped(raw, softcap, HAS_SOFTCAP), float("-inf"))
                new_max = tl.maximum(running_max, tl.max(x, axis=0))
                running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(x - new_max), axis=0)
                running_max = new_max
                if HAS_SMOOTHING:
                    kept_x = tl.where(mask, x, 0.0)
                    if HAS_WEIGHT:
                        w = tl.load(class_weight_ptr + offsets, mask=mask, other=0.0).to(acc_dtype)
                        weighted_x_sum += tl.sum(w * kept_x, axis=0)
                        weight_sum += tl.sum(w, axis=0)
                    else:
                        weighted_x_sum += tl.sum(kept_x, axis=0)
            if not HAS_WEIGHT:
                weight_sum += n_cols
            lse = running_max + tl.log(running_sum)

            target_in_range = (target >= 0) & (target < n_cols)
            x_target = _softcapped(
                tl.load(row_ptr + target, mask=target_in_range, other=0.0).to(acc_dtype), softcap, HAS_SOFTCAP
            )
            if HAS_WEIGHT:
                w_target = tl.load(class_weight_ptr + target, mask=target_in_range, other=0.0).to(acc_dtype)
            else:
                w_target = tl.full([], 1.0, acc_dtype)
            # A target outside the vocabulary makes the row's loss and gradient
            # NaN: reporting it as an error needs the host (see the op contract).
            w_target = tl.where(target_in_range, w_target, float("nan"))

            ce = (1.0 - label_smoothing) * w_target * (lse - x_target)
            if HAS_SMOOTHING:
                ce += smoothing_per_class * (weight_sum * lse - weighted_x_sum)
            z = tl.zeros([], acc_dtype)
            if HAS_Z:
                z = lse_square_scale * lse * lse
            if TOKEN_SCALING:
                scale = tl.exp(x_target - lse)
            else:
                scale = tl.full([], 1.0, acc_dtype)
            tl.store(loss_ptr + row64, scale * (ce / ce_divisor + z / z_divisor))
            if WRITE_Z:
                tl.store(z_loss_ptr + row64, scale * z / z_divisor)
            if WRITE_PREDICTED:
                tl.store(predicted_ptr + row64, best_index)

            if WRITE_LSE:
                tl.store(lse_ptr + row64, lse)
            if WRITE_GRAD:
                _store_row_gradient(
                    row_ptr, grad_row_ptr, class_weight_ptr, n_cols, target, lse, w_target, weight_sum,
                    scale / ce_divisor, scale / z_divisor, lse_square_scale, label_smoothing, softcap,
                    HAS_WEIGHT, HAS_SOFTCAP, HAS_SMOOTHING, HAS_Z, acc_dtype, BLOCK, STAGES,
                )  # fmt: skip


@triton.jit
def _store_row_gradient(
    row_ptr,
    grad_row_ptr,
    class_weight_ptr,
    n_cols,
    target,
    lse,
    w_target,
    weight_sum,
    ce_factor,
    z_factor,
    lse_square_scale,
    label_smoothing,
    softcap,
    HAS_WEIGHT: tl.constexpr,
    HAS_SOFTCAP: tl.constexpr,
    HAS_SMOOTHING: tl.constexpr,
    HAS_Z: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    """One row's gradient, in the form dx_j = p_j * p_coef - smooth_coef * w_j
    - [j == t] * target_coef; ``ce_factor`` and ``z_factor`` are what multiplies
    the row's ce and z terms (k_i, the divisors, and grad_output in backward)."""
    cols = tl.arange(0, BLOCK)
    target_coef = ce_factor * (1.0 - label_smoothing) * w_target
    smooth_coef = ce_factor * label_smoothing / n_cols
    p_coef = target_coef + smooth_coef * weight_sum
    if HAS_Z:
        p_coef += z_factor * 2.0 * lse_square_scale * lse
    for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
        offsets = start + cols
        mask = offsets < n_cols
        raw = tl.load(row_ptr + offsets, mask=mask, other=0.0).to(ACC)
        x = _softcapped(raw, softcap, HAS_SOFTCAP)
        grad = tl.exp(x - lse) * p_coef - tl.where(offsets == target, target_coef, 0.0)
        if HAS_SMOOTHING:
            if HAS_WEIGHT:
                w = tl.load(class_weight_ptr + offsets, mask=mask, other=0.0).to(ACC)
                grad -= smooth_coef * w
            else:
                grad -= smooth_coef
        if HAS_SOFTCAP:
            capped = x / softcap
            grad *= 1.0 - capped * capped
        tl.store(grad_row_ptr + offsets, grad.to(grad_row_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _store_zero_row(grad_row_ptr, n_cols, BLOCK: tl.constexpr):
    cols = tl.arange(0, BLOCK)
    zeros = tl.zeros([BLOCK], dtype=grad_row_ptr.dtype.element_ty)
    for start in tl.range(0, n_cols, BLOCK):
        offsets = start + cols
        tl.store(grad_row_ptr + offsets, zeros, mask=offsets < n_cols)


@triton.jit
def _cross_entropy_backward_kernel(
    logits_ptr,
    logits_row_stride,
    grad_ptr,
    grad_row_stride,
    target_ptr,
    target_stride,
    class_weight_ptr,
    weight_sum_ptr,
    divisors_ptr,
    lse_ptr,
    grad_output_ptr,
    grad_output_stride,
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
    FP64: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    """The gradient from the forward's saved lse, one read and one write of
    each row; grad_output is folded into the row's coefficients."""
    acc_dtype = tl.float64 if FP64 else tl.float32
    ce_divisor = tl.load(divisors_ptr).to(acc_dtype)
    z_divisor = tl.load(divisors_ptr + 1).to(acc_dtype)
    if HAS_WEIGHT:
        weight_sum = tl.load(weight_sum_ptr).to(acc_dtype)
    else:
        weight_sum = tl.full([], n_cols, acc_dtype)
    for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0)):
        row64 = tl.cast(row, tl.int64)
        grad_row_ptr = grad_ptr + row64 * grad_row_stride
        target = tl.load(target_ptr + row64 * target_stride).to(tl.int64)
        if target == ignore_index:
            _store_zero_row(grad_row_ptr, n_cols, BLOCK)
        else:
            target_in_range = (target >= 0) & (target < n_cols)
            if HAS_WEIGHT:
                w_target = tl.load(class_weight_ptr + target, mask=target_in_range, other=0.0).to(acc_dtype)
            else:
                w_target = tl.full([], 1.0, acc_dtype)
            w_target = tl.where(target_in_range, w_target, float("nan"))
            g = tl.load(grad_output_ptr + row64 * grad_output_stride).to(acc_dtype)
            _store_row_gradient(
                logits_ptr + row64 * logits_row_stride, grad_row_ptr, class_weight_ptr, n_cols, target,
                tl.load(lse_ptr + row64).to(acc_dtype), w_target, weight_sum, g / ce_divisor, g / z_divisor,
                lse_square_scale, label_smoothing, softcap,
                HAS_WEIGHT, HAS_SOFTCAP, HAS_SMOOTHING, HAS_Z, acc_dtype, BLOCK, STAGES,
            )  # fmt: skip


@triton.jit
def _scale_rows_kernel(
    grad_ptr,
    grad_row_stride,
    scale_ptr,
    scale_stride,
    n_rows,
    n_cols,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    """grad[i, :] *= scale[i * scale_stride]; rows whose scale is exactly 1 are
    not touched, so the usual grad_output of 1 costs no memory traffic and needs
    no host synchronization to find out."""
    cols = tl.arange(0, BLOCK)
    for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0)):
        row64 = tl.cast(row, tl.int64)
        scale = tl.load(scale_ptr + row64 * scale_stride).to(tl.float32)
        if scale != 1.0:
            row_ptr = grad_ptr + row64 * grad_row_stride
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                offsets = start + cols
                mask = offsets < n_cols
                grad = tl.load(row_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
                tl.store(row_ptr + offsets, (grad * scale).to(grad_ptr.dtype.element_ty), mask=mask)


class VocabLaunch(NamedTuple):
    grid: int
    block: int
    num_warps: int
    stages: int


def vocab_launch(n_rows: int, n_cols: int, device: torch.device, element_size: int) -> VocabLaunch:
    """Persistent grid, vocabulary block, num_warps and pipeline stages for
    rows of ``n_cols`` elements of ``element_size`` bytes.

    The grid is ``profile.vocab_programs_per_unit`` programs per compute unit; the block is
    :func:`row_block`, further capped to the widest power of two that the
    profile's register budget holds at BYTES_PER_BLOCK_ELEMENT each; the
    vocabulary loops prefetch the next block when :func:`pipeline_stages` says
    it fits."""
    profile = device_profile(device)
    block = register_block(profile, n_cols, BYTES_PER_BLOCK_ELEMENT)
    stages = pipeline_stages(profile, block * element_size)
    grid = max(1, min(n_rows, profile.compute_units * profile.vocab_programs_per_unit, profile.max_grid))
    return VocabLaunch(grid, block, profile.num_warps(block), stages)


def cross_entropy_rows(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_weight: torch.Tensor | None,
    divisors: torch.Tensor,
    loss_rows: torch.Tensor,
    *,
    ignore_index: int,
    lse_square_scale: float,
    label_smoothing: float,
    softcap: float | None,
    grad: torch.Tensor | None = None,
    z_rows: torch.Tensor | None = None,
    predicted: torch.Tensor | None = None,
    lse: torch.Tensor | None = None,
    token_scaling: bool = False,
) -> None:
    """Launch the kernel over the rows of ``logits`` (2-D, unit column stride).

    Writes each row's loss (already divided by ``divisors``) into ``loss_rows``
    (float32, or float64 for float64 logits), its z-loss into ``z_rows`` and
    its argmax into ``predicted`` and its log-sum-exp into ``lse`` (like
    ``loss_rows``; 0 on ignored rows) when given, and the gradient into ``grad``
    when given (same shape and dtype, unit column stride; ``logits`` itself
    for the gradient in place)."""
    n_rows, n_cols = logits.shape
    if n_rows == 0:
        return
    for rows in (logits, grad):
        assert rows is None or rows.stride(1) == 1 or n_cols == 1, "the kernel walks rows with unit column stride"
    grid, block, num_warps, stages = vocab_launch(n_rows, n_cols, logits.device, logits.element_size())
    if class_weight is not None:
        class_weight = class_weight.contiguous()
    _cross_entropy_kernel[(grid,)](
        logits,
        logits.stride(0),
        grad if grad is not None else logits,
        grad.stride(0) if grad is not None else 0,
        target,
        target.stride(0),
        class_weight if class_weight is not None else loss_rows,
        divisors,
        loss_rows,
        z_rows if z_rows is not None else loss_rows,
        predicted if predicted is not None else loss_rows,
        lse if lse is not None else loss_rows,
        n_rows,
        n_cols,
        ignore_index,
        float(lse_square_scale),
        float(label_smoothing),
        float(softcap) if softcap is not None else 1.0,
        HAS_WEIGHT=class_weight is not None,
        HAS_SOFTCAP=softcap is not None,
        HAS_SMOOTHING=label_smoothing > 0,
        HAS_Z=lse_square_scale != 0,
        WRITE_GRAD=grad is not None,
        WRITE_Z=z_rows is not None,
        WRITE_PREDICTED=predicted is not None,
        WRITE_LSE=lse is not None,
        TOKEN_SCALING=token_scaling,
        FP64=logits.dtype == torch.float64,
        BLOCK=block,
        STAGES=stages,
        num_warps=num_warps,
    )


def cross_entropy_backward_rows(
    logits: torch.Tensor,
    grad: torch.Tensor,
    target: torch.Tensor,
    class_weight: torch.Tensor | None,
    divisors: torch.Tensor,
    lse: torch.Tensor,
    grad_output: torch.Tensor,
    *,
    ignore_index: int,
    lse_square_scale: float,
    label_smoothing: float,
    softcap: float | None,
) -> None:
    """Write the gradient of the rows' loss times ``grad_output`` (a scalar, or
    one value per row) into ``grad``, from the ``lse`` the forward stored.
    ``grad`` may be ``logits`` itself: each element is read before it is written."""
    n_rows, n_cols = logits.shape
    if n_rows == 0:
        return
    for rows in (logits, grad):
        assert rows.stride(1) == 1 or n_cols == 1, "the kernel walks rows with unit column stride"
    grid, block, num_warps, stages = vocab_launch(n_rows, n_cols, logits.device, logits.element_size())
    grad_output = grad_output.reshape(-1)
    weight_sum = None
    if class_weight is not None:
        class_weight = class_weight.contiguous()
        weight_sum = class_weight.sum(dtype=lse.dtype).reshape(1)
    _cross_entropy_backward_kernel[(grid,)](
        logits,
        logits.stride(0),
        grad,
        grad.stride(0),
        target,
        target.stride(0),
        class_weight if class_weight is not None else lse,
        weight_sum if weight_sum is not None else lse,
        divisors,
        lse,
        grad_output,
        grad_output.stride(0) if grad_output.numel() > 1 else 0,
        n_rows,
        n_cols,
        ignore_index,
        float(lse_square_scale),
        float(label_smoothing),
        float(softcap) if softcap is not None else 1.0,
        HAS_WEIGHT=class_weight is not None,
        HAS_SOFTCAP=softcap is not None,
        HAS_SMOOTHING=label_smoothing > 0,
        HAS_Z=lse_square_scale != 0,
        FP64=logits.dtype == torch.float64,
        BLOCK=block,
        STAGES=stages,
        num_warps=num_warps,
    )


def scale_rows_(grad: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``grad *= scale`` in place, ``scale`` a scalar or one value per row;
    rows whose scale is 1 are skipped on the device."""
    n_rows, n_cols = grad.shape
    if grad.numel() == 0:
        return grad
    scale = scale.reshape(-1)
    grid, block, num_warps, stages = vocab_launch(n_rows, n_cols, grad.device, grad.element_size())
    _scale_rows_kernel[(grid,)](
        grad,
        grad.stride(0),
        scale,
        scale.stride(0) if scale.numel() > 1 else 0,
        n_rows,
        n_cols,
        BLOCK=block,
        STAGES=stages,
        num_warps=num_warps,
    )
    return grad


def grads_wanted(ctx: Any) -> tuple[bool, ...]:
    """ctx.needs_input_grad, but all False when the Function was applied under
    torch.no_grad(): needs_input_grad only looks at requires_grad, while the
    graph edges (next_functions) exist only when a backward can happen. This
    keeps evaluation from overwriting logits and from computing gradients."""
    recorded = bool(ctx.next_functions)
    return tuple(recorded and needed for needed in ctx.needs_input_grad)


def alias(tensor: torch.Tensor) -> torch.Tensor:
    """A new tensor object over ``tensor``'s storage. Returned from backward,
    it is the only reference AccumulateGrad sees, so a leaf's .grad takes the
    storage instead of a copy; version counters are not checked, as the
    buffers are kept on ctx rather than saved."""
    return tensor.view(tensor.shape)


def warn_if_repeated(ctx: Any, op: str) -> None:
    """The gradient buffer is scaled in place and handed to the caller by the
    first backward, so a second one over the same graph (retain_graph=True)
    cannot recover the unscaled gradient."""
    if getattr(ctx, "backward_done", False):
        warnings.warn(f"{op}: a second backward over one graph returns an already scaled gradient", stacklevel=3)
    ctx.backward_done = True


class CrossEntropyFunction(torch.autograd.Function):
    """Triton cross-entropy with the options of ``LigerCrossEntropyFunction``.

    Forward reads the logits once (loss, lse, extras); backward reads them
    again and writes the gradient, over their storage when the contract allows
    (see the module docstring)."""

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
        rows_dtype = torch.float64 if input.dtype == torch.float64 else torch.float32
        n_rows = logits.shape[0]
        loss_rows = torch.empty(n_rows, dtype=rows_dtype, device=input.device)
        z_rows = torch.empty_like(loss_rows) if return_z_loss else None
        want_predicted = return_token_accuracy or return_predicted_tokens
        predicted = torch.empty(n_rows, dtype=torch.int64, device=input.device) if want_predicted else None
        needs_grad = grads_wanted(ctx)[0]
        lse = torch.empty_like(loss_rows) if needs_grad else None
        divisors = loss_divisors(target, weight, ignore_index, reduction, rows_dtype)
        cross_entropy_rows(
            logits,
            target,
            weight,
            divisors,
            loss_rows,
            ignore_index=ignore_index,
            lse_square_scale=lse_square_scale,
            label_smoothing=label_smoothing,
            softcap=softcap,
            z_rows=z_rows,
            predicted=predicted,
            lse=lse,
        )
        if needs_grad:
            # as_rows may have copied: the copy is ours to overwrite.
            ctx.overwrite = logits is not input or overwritable(ctx, input)
            ctx.options = (ignore_index, lse_square_scale, label_smoothing, softcap)
            ctx.input_shape = input.shape
            ctx.save_for_backward(logits, target, weight, divisors, lse)
        loss = reduce_rows(loss_rows, reduction).to(loss_dtype(input.dtype))
        z_loss = reduce_rows(z_rows, reduction).to(loss_dtype(input.dtype)) if z_rows is not None else None
        accuracy = token_accuracy(predicted, target, ignore_index) if return_token_accuracy else None
        predicted = predicted if return_predicted_tokens else None
        extras = (z_loss, accuracy, predicted)
        ctx.mark_non_differentiable(*[extra for extra in extras if extra is not None])
        return loss, *extras

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, *unused: Any) -> tuple[Any, ...]:
        logits, target, weight, divisors, lse = ctx.saved_tensors
        ignore_index, lse_square_scale, label_smoothing, softcap = ctx.options
        grad = logits if ctx.overwrite else torch.empty_like(logits)
        cross_entropy_backward_rows(
            logits,
            grad,
            target,
            weight,
            divisors,
            lse,
            grad_loss,
            ignore_index=ignore_index,
            lse_square_scale=lse_square_scale,
            label_smoothing=label_smoothing,
            softcap=softcap,
        )
        if grad is logits:
            mark_overwritten(logits)
        return (grad.view(ctx.input_shape), *([None] * 10))
