"""Generalized JSD over a vocabulary, portable Triton kernel
(math: :mod:`liger_kernel.ops.jsd`).

Each element's loss is formed from its gradient by the contract's identities.
The divisor D, the kept-row count, is read from the device (no sync).

One kernel serves two callers:
* :class:`JSDFunction`, on log-probabilities: one pass over each row writes
  dl/dX / D (0 on ignored rows) into a new buffer in the input's dtype while
  it sums the row's loss. Backward scales that buffer by the incoming gradient.
  For fp16 input the forward pass writes no gradient: backward runs the kernel
  again with the incoming gradient (``GRAD_SCALE``) folded in before rounding,
  as fp16 cannot hold dl/dX / D (about 1 / (rows * V)) until a loss scale
  multiplies it.
* the fused linear JSD (``FROM_LOGITS``), on one chunk of raw logits s (student)
  and t (teacher) with 1/temperature k: pass 1 keeps online max / sum-exp of
  k*s and k*t for their log-sum-exps, pass 2 sums l and g = dl/dX over the row,
  pass 3 writes the gradient through log_softmax and the temperature over s
  (:mod:`liger_kernel.ops.fused_linear_jsd`).

A persistent grid walks the rows; each row is walked in vocabulary blocks in
fp32 (fp64 for fp64 inputs). The block is capped by the profile's register
budget at BYTES_PER_BLOCK_ELEMENT per element: about a dozen fp32 values per
element are live at once (two loads, their exponentials, log M, the two
results and the row accumulators), which keeps a block in registers on GPUs
and within the unified buffer on an Ascend NPU.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.losses import kept_divisor
from liger_kernel.ops.cross_entropy import loss_dtype
from liger_kernel.triton.cross_entropy import alias, grads_wanted, scale_rows_, warn_if_repeated
from liger_kernel.triton.launch import (
    accumulator_dtype,
    as_rows,
    launch,
    pipeline_stages,
    register_block,
)

#: On-chip bytes budgeted per vocabulary element of a block (see the module docstring).
BYTES_PER_BLOCK_ELEMENT = 48

FORWARD_KL, REVERSE_KL, GENERAL = 0, 1, 2


def jsd_mode(beta: float) -> int:
    """Which formula ``beta`` selects: the two KL limits are their own formulas."""
    if beta == 0.0:
        return FORWARD_KL
    if beta == 1.0:
        return REVERSE_KL
    return GENERAL


@triton.jit
def _jsd_elements(x, y, beta, MODE: tl.constexpr):
    """(l, dl/dx) of log-probabilities x (student) and y (teacher), elementwise."""
    if MODE == 0:
        p = tl.exp(y)
        loss = tl.where(p > 0, p * (y - x), 0.0)
        grad = -p
    elif MODE == 1:
        q = tl.exp(x)
        loss = tl.where(q > 0, q * (x - y), 0.0)
        grad = loss + q
    else:
        p = tl.exp(y)
        q = tl.exp(x)
        log_m = tl.log(beta * p + (1.0 - beta) * q)
        grad = tl.where(q > 0, (1.0 - beta) * q * (x - log_m), 0.0)
        loss = tl.where(p > 0, beta * p * (y - log_m), 0.0) + grad
    return loss, grad


@triton.jit
def _jsd_kernel(
    X,
    x_row_stride,
    Y,
    y_row_stride,
    GRAD,
    grad_row_stride,
    LABELS,
    DIVISOR,
    GRAD_SCALE,
    LOSS_ROWS,
    n_rows,
    n_cols,
    ignore_index,
    beta,
    inv_temperature,
    MODE: tl.constexpr,
    HAS_LABELS: tl.constexpr,
    HAS_GRAD_SCALE: tl.constexpr,
    FROM_LOGITS: tl.constexpr,
    WRITE_GRAD: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    cols = tl.arange(0, BLOCK)
    inv_divisor = 1.0 / tl.load(DIVISOR).to(ACC)
    grad_factor = inv_divisor
    if HAS_GRAD_SCALE:
        grad_factor = grad_factor * tl.load(GRAD_SCALE).to(ACC)
    for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0)):
        row64 = tl.cast(row, tl.int64)
        x_row = X + row64 * x_row_stride
        y_row = Y + row64 * y_row_stride
        grad_row = GRAD + row64 * grad_row_stride
        kept = True
        if HAS_LABELS:
            kept = tl.load(LABELS + row64) != ignore_index
        if not kept:
            tl.store(LOSS_ROWS + row64, 0.0)
            if WRITE_GRAD:
                zeros = tl.zeros([BLOCK], dtype=GRAD.dtype.element_ty)
                for start in tl.range(0, n_cols, BLOCK):
                    tl.store(grad_row + start + cols, zeros, mask=start + cols < n_cols)
        else:
            lse_x = tl.zeros([], ACC)
            lse_y = tl.zeros([], ACC)
            if FROM_LOGITS:
                max_x = tl.full([], float("-inf"), ACC)
                max_y = tl.full([], float("-inf"), ACC)
                sum_x = tl.zeros([], ACC)
                sum_y = tl.zeros([], ACC)
                for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                    mask = start + cols < n_cols
                    x = tl.load(x_row + start + cols, mask=mask, other=float("-inf")).to(ACC) * inv_temperature
                    y = tl.load(y_row + start + cols, mask=mask, other=float("-inf")).to(ACC) * inv_temperature
                    new_max_x = tl.maximum(max_x, tl.max(x, axis=0))
                    new_max_y = tl.maximum(max_y, tl.max(y, axis=0))
                    sum_x = sum_x * tl.exp(max_x - new_max_x) + tl.sum(tl.exp(x - new_max_x), axis=0)
                    sum_y = sum_y * tl.exp(max_y - new_max_y) + tl.sum(tl.exp(y - new_max_y), axis=0)
                    max_x = new_max_x
                    max_y = new_max_y
                lse_x = max_x + tl.log(sum_x)
                lse_y = max_y + tl.log(sum_y)
            loss_sum = tl.zeros([BLOCK], ACC)
            grad_sum = tl.zeros([BLOCK], ACC)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                x = tl.load(x_row + start + cols, mask=mask, other=float("-inf")).to(ACC)
                y = tl.load(y_row + start + cols, mask=mask, other=float("-inf")).to(ACC)
                if FROM_LOGITS:
                    x = x * inv_temperature - lse_x
                    y = y * inv_temperature - lse_y
                loss, grad = _jsd_elements(x, y, beta, MODE)
                loss_sum += loss
                if FROM_LOGITS:
                    grad_sum += grad
                elif WRITE_GRAD:
                    tl.store(grad_row + start + cols, (grad * grad_factor).to(GRAD.dtype.element_ty), mask=mask)
            tl.store(LOSS_ROWS + row64, tl.sum(loss_sum, axis=0) * inv_divisor)
            if FROM_LOGITS and WRITE_GRAD:
                grad_total = tl.sum(grad_sum, axis=0)
                scale = inv_temperature * grad_factor
                for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                    mask = start + cols < n_cols
                    x = tl.load(x_row + start + cols, mask=mask, other=float("-inf")).to(ACC)
                    y = tl.load(y_row + start + cols, mask=mask, other=float("-inf")).to(ACC)
                    x = x * inv_temperature - lse_x
                    y = y * inv_temperature - lse_y
                    _, grad = _jsd_elements(x, y, beta, MODE)
                    dlogits = (grad - tl.exp(x) * grad_total) * scale
                    tl.store(grad_row + start + cols, dlogits.to(GRAD.dtype.element_ty), mask=mask)


class VocabLaunch(NamedTuple):
    grid: int
    block: int
    num_warps: int
    stages: int


def vocab_launch(n_rows: int, n_cols: int, device: torch.device, bytes_per_column: int, passes: int) -> VocabLaunch:
    """Grid, vocabulary block, num_warps and pipeline stages for the kernel.

    A single-pass walk takes the profile's persistent grid; a multi-pass one
    (the fused linear JSD) one program per compute unit, so the rows in flight
    stay in cache between passes."""
    profile = device_profile(device)
    block = register_block(profile, n_cols, BYTES_PER_BLOCK_ELEMENT)
    stages = pipeline_stages(profile, block * bytes_per_column)
    if passes == 1:
        grid = profile.grid(n_rows)
    else:
        grid = max(1, min(n_rows, profile.compute_units, profile.max_grid))
    return VocabLaunch(grid, block, profile.num_warps(block), stages)


def jsd_rows(
    student: torch.Tensor,
    teacher: torch.Tensor,
    divisor: torch.Tensor,
    loss_rows: torch.Tensor,
    *,
    beta: float,
    grad: torch.Tensor | None = None,
    shift_labels: torch.Tensor | None = None,
    ignore_index: int = -100,
    temperature: float | None = None,
    grad_scale: torch.Tensor | None = None,
) -> None:
    """Launch the kernel over the rows of ``student`` and ``teacher`` (2-D, unit column stride).

    With ``temperature`` None they are log-probabilities and ``grad`` (when
    given) receives dl/dX / divisor; with a temperature they are raw logits
    and ``grad`` (``student`` itself is allowed) receives dloss/dlogits.
    ``loss_rows`` receives each row's loss / divisor; ``divisor`` is a 1-element
    device tensor. ``grad_scale`` (a 1-element tensor: the incoming gradient)
    multiplies the gradient before it is stored."""
    n_rows, n_cols = student.shape
    if n_rows == 0:
        return
    from_logits = temperature is not None
    acc = accumulator_dtype(torch.promote_types(student.dtype, teacher.dtype))
    plan = vocab_launch(
        n_rows, n_cols, student.device, student.element_size() + teacher.element_size(), 3 if from_logits else 1
    )
    launch(
        device_profile(student.device),
        _jsd_kernel,
        plan.grid,
        student,
        student.stride(0),
        teacher,
        teacher.stride(0),
        grad if grad is not None else student,
        grad.stride(0) if grad is not None else 0,
        shift_labels if shift_labels is not None else divisor,
        divisor,
        grad_scale if grad_scale is not None else divisor,
        loss_rows,
        n_rows,
        n_cols,
        ignore_index,
        float(beta),
        1.0 / temperature if from_logits else 1.0,
        MODE=jsd_mode(beta),
        HAS_LABELS=shift_labels is not None,
        HAS_GRAD_SCALE=grad_scale is not None,
        FROM_LOGITS=from_logits,
        WRITE_GRAD=grad is not None,
        ACC=acc,
        BLOCK=plan.block,
        STAGES=plan.stages,
        num_warps=plan.num_warps,
    )


#: Input dtypes whose gradient is formed in backward, with the incoming gradient
#: folded in before it is rounded: fp16 cannot hold a mean JSD's gradient (about
#: 1 / (rows * V) per element) until a loss scale multiplies it, and rounding it
#: in forward would flush it to zero before the scale arrives.
SCALE_BEFORE_ROUNDING = (torch.float16,)


class JSDFunction(torch.autograd.Function):
    """Triton generalized JSD with the arguments of ``LigerJSDFunction``.

    The input is never written (it is usually log_softmax's output, which
    log_softmax keeps for its own backward). For fp32 and bf16 inputs the
    gradient is computed in forward into a buffer of the input's shape and
    dtype, which backward scales in place and hands on; for fp16 inputs
    (SCALE_BEFORE_ROUNDING) backward runs the kernel again with the incoming
    gradient folded in. The graph supports one backward pass."""

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
        student = as_rows(input)
        teacher = as_rows(target)
        n_rows = student.shape[0]
        rows_dtype = torch.float64 if torch.float64 in (input.dtype, target.dtype) else torch.float32
        want_grad = grads_wanted(ctx)[0]
        replay = want_grad and input.dtype in SCALE_BEFORE_ROUNDING
        grad = None
        if want_grad and not replay:
            grad = torch.empty(student.shape, dtype=input.dtype, device=input.device)
        loss_rows = torch.empty(n_rows, dtype=rows_dtype, device=input.device)
        divisor = kept_divisor(shift_labels, ignore_index, n_rows, rows_dtype, input.device)
        options = {"beta": beta, "shift_labels": shift_labels, "ignore_index": ignore_index}
        jsd_rows(student, teacher, divisor, loss_rows, grad=grad, **options)
        ctx.replay = replay
        if replay:
            ctx.save_for_backward(student, teacher, divisor)
            ctx.options = options
        # Kept on ctx, not saved: backward owns this buffer and hands it on.
        ctx.grad_buffer = grad
        return loss_rows.sum().to(loss_dtype(input.dtype))

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[Any, ...]:
        warn_if_repeated(ctx, "jsd")
        if ctx.replay:
            student, teacher, divisor = ctx.saved_tensors
            grad = torch.empty(student.shape, dtype=student.dtype, device=student.device)
            scratch = torch.empty(student.shape[0], dtype=divisor.dtype, device=student.device)
            scale = grad_loss.reshape(1).to(divisor.dtype)
            jsd_rows(student, teacher, divisor, scratch, grad=grad, grad_scale=scale, **ctx.options)
            return grad, None, None, None, None
        grad = ctx.grad_buffer
        if grad is None:
            return None, None, None, None, None
        return alias(scale_rows_(grad, grad_loss)), None, None, None, None
