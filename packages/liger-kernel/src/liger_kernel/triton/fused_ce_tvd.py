"""Per-token cross-entropy and total variation distance, portable Triton kernels
(math: :mod:`liger_kernel.ops.fused_ce_tvd`).

Forward, per row (a persistent grid, one program per compute unit so that a
row stays in cache between its passes), in vocabulary blocks in fp32 (fp64 for
fp64): pass 1 keeps the online max and sum-exp of the student and teacher
logits (their log-sum-exps); pass 2 sums |P - Q| and P * sign(P - Q) (Sigma),
and the row's CE reads its target logit (a masked load: an out-of-range target
gives NaN, never an out-of-bounds read). It stores ce, tvd and the three row
statistics backward needs; the softmaxes are never stored.

Backward, one pass per row over both logits, writes ds into a new buffer in
the student logits' dtype (the arguments are never written). Traffic: the two
logits are read twice in forward and once in backward, the gradient written once.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.ops.kl_div import loss_dtype
from liger_kernel.triton.jsd import vocab_launch
from liger_kernel.triton.launch import accumulator_dtype, launch


@triton.jit
def _fused_ce_tvd_forward_kernel(
    STUDENT,
    student_row_stride,
    TEACHER,
    teacher_row_stride,
    TARGET,
    CE,
    TVD,
    STUDENT_LSE,
    TEACHER_LSE,
    SIGMA,
    n_rows,
    n_cols,
    ignore_index,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    cols = tl.arange(0, BLOCK)
    for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0)):
        row64 = tl.cast(row, tl.int64)
        student_row = STUDENT + row64 * student_row_stride
        teacher_row = TEACHER + row64 * teacher_row_stride
        target = tl.load(TARGET + row64).to(tl.int64)
        if target == ignore_index:
            tl.store(CE + row64, 0.0)
            tl.store(TVD + row64, 0.0)
            tl.store(STUDENT_LSE + row64, 0.0)
            tl.store(TEACHER_LSE + row64, 0.0)
            tl.store(SIGMA + row64, 0.0)
        else:
            max_s = tl.full([], float("-inf"), ACC)
            max_u = tl.full([], float("-inf"), ACC)
            sum_s = tl.zeros([], ACC)
            sum_u = tl.zeros([], ACC)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                s = tl.load(student_row + start + cols, mask=mask, other=float("-inf")).to(ACC)
                u = tl.load(teacher_row + start + cols, mask=mask, other=float("-inf")).to(ACC)
                new_max_s = tl.maximum(max_s, tl.max(s, axis=0))
                new_max_u = tl.maximum(max_u, tl.max(u, axis=0))
                sum_s = sum_s * tl.exp(max_s - new_max_s) + tl.sum(tl.exp(s - new_max_s), axis=0)
                sum_u = sum_u * tl.exp(max_u - new_max_u) + tl.sum(tl.exp(u - new_max_u), axis=0)
                max_s = new_max_s
                max_u = new_max_u
            lse_s = max_s + tl.log(sum_s)
            lse_u = max_u + tl.log(sum_u)
            distance = tl.zeros([BLOCK], ACC)
            sigma = tl.zeros([BLOCK], ACC)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                # masked columns load -inf: P = Q = 0 there
                p = tl.exp(tl.load(student_row + start + cols, mask=mask, other=float("-inf")).to(ACC) - lse_s)
                q = tl.exp(tl.load(teacher_row + start + cols, mask=mask, other=float("-inf")).to(ACC) - lse_u)
                diff = p - q
                distance += tl.abs(diff)
                sigma += tl.where(diff > 0, p, tl.where(diff < 0, -p, 0.0))
            in_range = (target >= 0) & (target < n_cols)
            picked = tl.load(student_row + target, mask=in_range, other=float("nan")).to(ACC)
            tl.store(CE + row64, lse_s - picked)
            tl.store(TVD + row64, 0.5 * tl.sum(distance, axis=0))
            tl.store(STUDENT_LSE + row64, lse_s)
            tl.store(TEACHER_LSE + row64, lse_u)
            tl.store(SIGMA + row64, tl.sum(sigma, axis=0))


@triton.jit
def _fused_ce_tvd_backward_kernel(
    STUDENT,
    student_row_stride,
    TEACHER,
    teacher_row_stride,
    TARGET,
    GRAD_CE,
    grad_ce_stride,
    GRAD_TVD,
    grad_tvd_stride,
    STUDENT_LSE,
    TEACHER_LSE,
    SIGMA,
    GRAD,
    grad_row_stride,
    n_rows,
    n_cols,
    ignore_index,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    cols = tl.arange(0, BLOCK)
    for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0)):
        row64 = tl.cast(row, tl.int64)
        student_row = STUDENT + row64 * student_row_stride
        teacher_row = TEACHER + row64 * teacher_row_stride
        grad_row = GRAD + row64 * grad_row_stride
        target = tl.load(TARGET + row64).to(tl.int64)
        if target == ignore_index:
            zeros = tl.zeros([BLOCK], dtype=GRAD.dtype.element_ty)
            for start in tl.range(0, n_cols, BLOCK):
                tl.store(grad_row + start + cols, zeros, mask=start + cols < n_cols)
        else:
            g_ce = tl.load(GRAD_CE + row64 * grad_ce_stride).to(ACC)
            half_g_tvd = 0.5 * tl.load(GRAD_TVD + row64 * grad_tvd_stride).to(ACC)
            lse_s = tl.load(STUDENT_LSE + row64)
            lse_u = tl.load(TEACHER_LSE + row64)
            sigma = tl.load(SIGMA + row64)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                offsets = start + cols
                mask = offsets < n_cols
                p = tl.exp(tl.load(student_row + offsets, mask=mask, other=float("-inf")).to(ACC) - lse_s)
                q = tl.exp(tl.load(teacher_row + offsets, mask=mask, other=float("-inf")).to(ACC) - lse_u)
                diff = p - q
                sign = tl.where(diff > 0, 1.0, tl.where(diff < 0, -1.0, 0.0))
                d = g_ce * (p - tl.where(offsets == target, 1.0, 0.0)) + half_g_tvd * p * (sign - sigma)
                tl.store(grad_row + offsets, d.to(GRAD.dtype.element_ty), mask=mask)


def _unit_columns(logits: torch.Tensor) -> torch.Tensor:
    return logits if logits.stride(-1) == 1 or logits.shape[-1] == 1 else logits.contiguous()


class FusedCETVDFunction(torch.autograd.Function):
    """Triton CE + TVD with the arguments of ``LigerFusedCETVDFunction``. No argument is written."""

    @staticmethod
    def forward(
        ctx: Any,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        target: torch.Tensor,
        ignore_index: int = -100,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        student, teacher = _unit_columns(student_logits), _unit_columns(teacher_logits)
        n_rows, n_cols = student.shape
        dtype = loss_dtype(student.dtype, teacher.dtype)
        ce, tvd, student_lse, teacher_lse, sigma = (
            torch.empty(n_rows, dtype=dtype, device=student.device) for _ in range(5)
        )
        if n_rows > 0:
            plan = vocab_launch(n_rows, n_cols, student.device, student.element_size() + teacher.element_size(), 2)
            launch(
                device_profile(student.device),
                _fused_ce_tvd_forward_kernel,
                plan.grid,
                student,
                student.stride(0),
                teacher,
                teacher.stride(0),
                target,
                ce,
                tvd,
                student_lse,
                teacher_lse,
                sigma,
                n_rows,
                n_cols,
                ignore_index,
                ACC=accumulator_dtype(dtype),
                BLOCK=plan.block,
                STAGES=plan.stages,
                num_warps=plan.num_warps,
            )
        ctx.save_for_backward(student, teacher, target, student_lse, teacher_lse, sigma)
        ctx.ignore_index = ignore_index
        ctx.grad_dtype = student_logits.dtype
        return ce, tvd

    @staticmethod
    def backward(ctx: Any, grad_ce: torch.Tensor | None, grad_tvd: torch.Tensor | None) -> tuple[Any, ...]:
        student, teacher, target, student_lse, teacher_lse, sigma = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        n_rows, n_cols = student.shape
        grad_ce = torch.zeros_like(sigma) if grad_ce is None else grad_ce
        grad_tvd = torch.zeros_like(sigma) if grad_tvd is None else grad_tvd
        grad = torch.empty((n_rows, n_cols), dtype=ctx.grad_dtype, device=student.device)
        if n_rows > 0:
            plan = vocab_launch(n_rows, n_cols, student.device, student.element_size() + teacher.element_size(), 1)
            launch(
                device_profile(student.device),
                _fused_ce_tvd_backward_kernel,
                plan.grid,
                student,
                student.stride(0),
                teacher,
                teacher.stride(0),
                target,
                grad_ce,
                grad_ce.stride(0),
                grad_tvd,
                grad_tvd.stride(0),
                student_lse,
                teacher_lse,
                sigma,
                grad,
                grad.stride(0),
                n_rows,
                n_cols,
                ignore_index=ctx.ignore_index,
                ACC=accumulator_dtype(sigma.dtype),
                BLOCK=plan.block,
                STAGES=plan.stages,
                num_warps=plan.num_warps,
            )
        return grad, None, None, None
