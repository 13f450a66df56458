"""Two LM heads fused with the generalized JSD between their distributions: distillation.

    X = log_softmax(student_input @ student_weight.T / temperature)     the student, log Q
    Y = log_softmax(teacher_input @ teacher_weight.T / temperature)     the teacher, log P
    loss = jsd(X, Y, shift_labels, beta=jsd_beta, ignore_index)         (see liger_kernel.ops.jsd)
Student and teacher may have different hidden sizes but share the vocabulary.

Backward reaches the student only. With g = dloss/dX from the JSD (already
divided by the kept-row count) and Q = exp(X), per row:
    dlogits_j = (g_j - Q_j * sum_k g_k) / temperature        through log_softmax and the temperature
    dstudent_input = dlogits @ student_weight;  dstudent_weight = sum over rows of dlogits.T @ student_input
Backends walk the rows in chunks, forming only one chunk of each logit matrix
at a time, so that neither (rows, V) matrix ever exists whole; rows whose
label is ignored need no GEMM at all. The loss is float32 for half-precision
inputs (float64 for float64).

Accumulation follows fused linear cross-entropy's rule
(:mod:`liger_kernel.ops.fused_linear_cross_entropy`): dstudent_weight is summed
over the chunks in ``accum_dtype`` and returned in the weight's dtype, ``None``
meaning the weight's own dtype (its ``accumulation_dtype``); float32 bounds the
error of half-precision weights' gradient at the memory of a float32 copy.
``jsd_impl`` and ``jsd_mode`` choose the backend as for :mod:`liger_kernel.ops.jsd`;
those two are consumed by the contract and never reach a backend.
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import (
    FLOAT_DTYPES,
    DispatchedFunction,
    check_implementation_choice,
    implementation_context,
    require_dtype_choice,
    require_ndim,
    require_real,
    require_same_device,
    require_tensor,
)
from liger_kernel.ops.cross_entropy import loss_dtype
from liger_kernel.ops.jsd import check_scalar_options as check_jsd_options
from liger_kernel.ops.jsd import check_shift_labels


def _require_head(input_name: str, input: torch.Tensor, weight_name: str, weight: torch.Tensor) -> None:
    require_tensor(input_name, input)
    require_tensor(weight_name, weight)
    require_ndim(input_name, input, (2,))
    require_ndim(weight_name, weight, (2,))
    if weight.shape[1] != input.shape[1]:
        raise ValueError(
            f"{weight_name} has shape {tuple(weight.shape)}; expected (vocab, {input.shape[1]}) "
            f"to match {input_name}'s hidden size"
        )


def check_scalar_options(jsd_beta: float, ignore_index: int, temperature: float) -> None:
    """The options that are plain values (also checked when a loss module is built)."""
    check_jsd_options("jsd_beta", jsd_beta, ignore_index)
    require_real("temperature", temperature, minimum=0.0, above_minimum=True)


class LigerFusedLinearJSDFunction(DispatchedFunction):
    op = "fused_linear_jsd"
    backward_reads = ("student_input", "student_weight", "teacher_input", "teacher_weight")  # fp16 recomputes
    contract_args = ("jsd_impl", "jsd_mode")

    @staticmethod
    def call_context(jsd_impl=None, jsd_mode=None):  # type: ignore[override]
        return implementation_context(jsd_impl, jsd_mode)

    @staticmethod
    def outputs(student_input, *_):
        return (((), loss_dtype(student_input.dtype)),)

    @staticmethod
    def check(
        student_input: torch.Tensor,
        student_weight: torch.Tensor,
        teacher_input: torch.Tensor,
        teacher_weight: torch.Tensor,
        shift_labels: torch.Tensor | None = None,
        jsd_beta: float = 0.5,
        ignore_index: int = -100,
        temperature: float = 1.0,
        accum_dtype: torch.dtype | None = None,
        jsd_impl: str | None = None,
        jsd_mode: str | None = None,
    ) -> None:
        _require_head("student_input", student_input, "student_weight", student_weight)
        _require_head("teacher_input", teacher_input, "teacher_weight", teacher_weight)
        if teacher_input.shape[0] != student_input.shape[0]:
            raise ValueError(
                f"teacher_input has {teacher_input.shape[0]} rows; expected {student_input.shape[0]} "
                "(one per row of student_input)"
            )
        if teacher_weight.shape[0] != student_weight.shape[0]:
            raise ValueError(
                f"teacher_weight has vocabulary {teacher_weight.shape[0]}; expected {student_weight.shape[0]} "
                "(student_weight's: the two distributions share the vocabulary)"
            )
        check_shift_labels(shift_labels, student_input.shape[0])
        check_scalar_options(jsd_beta, ignore_index, temperature)
        require_dtype_choice("accum_dtype", accum_dtype, FLOAT_DTYPES)
        check_implementation_choice("jsd_impl", jsd_impl, "jsd_mode", jsd_mode)
        require_same_device(
            "student_input",
            {
                "student_input": student_input,
                "student_weight": student_weight,
                "teacher_input": teacher_input,
                "teacher_weight": teacher_weight,
                "shift_labels": shift_labels,
            },
        )
