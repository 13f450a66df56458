"""An LM head fused with the KL divergence from a given target distribution (distillation
from soft labels, e.g. cached teacher probabilities).

    Y = log_softmax(student_input @ student_weight.T / temperature)      the student, (rows, V)
    l_r = sum_j t_rj * (log(max(t_rj, eps)) - Y_rj)                      t = target, probabilities
    loss = sum over kept rows r of l_r / D
with D by ``reduction``: "batchmean" the kept-row count, "mean" the kept-row count
times V, "sum" 1 (``torch.nn.KLDivLoss``'s reductions over the kept rows). A row
is kept unless ``shift_labels`` is given and its label is ``ignore_index``; with
no kept row the loss is 0. eps keeps the log finite at t = 0 (0 * log 0 = 0).
"none" is refused: the gradients are formed in forward, which needs a scalar
loss (:class:`liger_kernel.transformers.kl_div.LigerKLDIVLoss` takes "none").

Backward reaches the student only (``target`` takes no gradient: one that
requires grad while autograd records is refused). Per kept row, with
S = exp(Y) and T = temperature:
    dlogits_rj = (S_rj * sum_k t_rk - t_rj) / (T * D)
    dstudent_input = dlogits @ student_weight;  dstudent_weight = sum over rows of dlogits.T @ student_input
Backends walk the rows in chunks (:func:`liger_kernel.losses.walk_linear_chunks`),
forming one chunk of logits at a time, so the (rows, V) logits never exist whole.
The loss is float32 (float64 for float64 inputs). dstudent_weight accumulates in
``accum_dtype`` as in :mod:`liger_kernel.ops.fused_linear_cross_entropy`
(None: the weight's dtype) and comes back in the weight's dtype. The gradients
may be formed in forward and scaled by the incoming gradient in backward: the
graph supports one backward (a second one warns, as fused linear cross-entropy's).

The temperature must be positive (a negative one would turn the student's
distribution upside down).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from liger_kernel.ops._contract import (
    FLOAT_DTYPES,
    DispatchedFunction,
    require_choice,
    require_dtype_choice,
    require_int,
    require_ndim,
    require_no_grad,
    require_real,
    require_same_device,
    require_shape,
    require_tensor,
)
from liger_kernel.ops.jsd import check_shift_labels
from liger_kernel.ops.kl_div import loss_dtype

#: the reductions of the fused op (0.8.5's name for the type)
REDUCTION_LITERAL = Literal["batchmean", "mean", "sum"]
REDUCTIONS = get_args(REDUCTION_LITERAL)

#: the row index :func:`distribution_rows` gives a row that is not kept
IGNORED_ROW = -1


def check_scalar_options(reduction: str, ignore_index: int, temperature: float, eps: float) -> None:
    """The options that are plain values (also checked when a loss module is built)."""
    if reduction == "none":
        raise ValueError(
            "reduction='none' is not supported by the fused linear KL divergence (its gradients are formed in "
            "forward, from a scalar loss); use LigerKLDIVLoss over the logits for a per-element loss"
        )
    require_choice("reduction", reduction, REDUCTIONS)
    require_int("ignore_index", ignore_index)
    require_real("temperature", temperature, minimum=0.0, above_minimum=True)
    require_real("eps", eps, minimum=0.0, above_minimum=True)


def distribution_rows(
    shift_labels: torch.Tensor | None, ignore_index: int, n_rows: int, device: torch.device
) -> torch.Tensor:
    """Each row's index into ``target`` (int64), IGNORED_ROW where its label is
    ignored: what the shared chunk walker takes as the rows' targets, so that it
    skips the ignored rows and hands each chunk's row kernel the target rows to read."""
    rows = torch.arange(n_rows, device=device)
    if shift_labels is None:
        return rows
    return torch.where(shift_labels != ignore_index, rows, IGNORED_ROW)


def kl_divisor(
    rows: torch.Tensor, reduction: str, vocab: int, dtype: torch.dtype, explicit_labels: bool
) -> torch.Tensor:
    """D of the module docstring as a 0-d tensor of ``dtype`` on the rows' device
    (no host synchronization), 1 where it would be 0. ``rows`` is
    :func:`distribution_rows`' result; ``explicit_labels`` says whether labels were given."""
    if reduction == "sum":
        return torch.ones((), dtype=dtype, device=rows.device)
    if explicit_labels:
        kept = (rows != IGNORED_ROW).sum(dtype=dtype).clamp_(min=1.0)
    else:
        kept = torch.tensor(float(max(rows.numel(), 1)), dtype=dtype, device=rows.device)
    return kept * vocab if reduction == "mean" else kept


class LigerFusedLinearKLDivFunction(DispatchedFunction):
    op = "fused_linear_kl_div"
    backward_reads = ("student_input", "student_weight", "target", "shift_labels")  # fp16 recomputes

    @staticmethod
    def outputs(student_input, student_weight, target, *_):
        return (((), loss_dtype(student_input.dtype, student_weight.dtype, target.dtype)),)

    @staticmethod
    def check(
        student_input: torch.Tensor,
        student_weight: torch.Tensor,
        target: torch.Tensor,
        shift_labels: torch.Tensor | None = None,
        reduction: str = "batchmean",
        ignore_index: int = -100,
        temperature: float = 1.0,
        eps: float = 1e-10,
        accum_dtype: torch.dtype | None = None,
    ) -> None:
        require_tensor("student_input", student_input)
        require_tensor("student_weight", student_weight)
        require_tensor("target", target)
        require_ndim("student_input", student_input, (2,))
        require_ndim("student_weight", student_weight, (2,))
        if student_weight.shape[1] != student_input.shape[1]:
            raise ValueError(
                f"student_weight has shape {tuple(student_weight.shape)}; expected (vocab, {student_input.shape[1]}) "
                "to match student_input's hidden size"
            )
        if student_weight.shape[0] == 0:
            raise ValueError("student_weight has an empty vocabulary (shape[0] == 0)")
        require_shape(
            "target",
            target,
            (student_input.shape[0], student_weight.shape[0]),
            "one distribution over student_weight's vocabulary per row of student_input",
        )
        check_shift_labels(shift_labels, student_input.shape[0])
        check_scalar_options(reduction, ignore_index, temperature, eps)
        require_dtype_choice("accum_dtype", accum_dtype, FLOAT_DTYPES)
        require_same_device(
            "student_input",
            {
                "student_input": student_input,
                "student_weight": student_weight,
                "target": target,
                "shift_labels": shift_labels,
            },
        )
        require_no_grad("target", target, "student_input and student_weight")


def fused_linear_kl_div_forward(
    student_input: torch.Tensor,
    student_weight: torch.Tensor,
    target: torch.Tensor,
    shift_labels: torch.Tensor | None,
    reduction: str,
    ignore_index: int,
    has_label: bool,
    temperature: float,
    eps: float,
    accum_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """0.8.5's forward half, as the op: (loss, dstudent_input, dstudent_weight) of
    :class:`LigerFusedLinearKLDivFunction` for an incoming gradient of 1, on the
    backend the op routes to. dstudent_weight is None when student_weight does
    not require grad; ``has_label`` must say whether ``shift_labels`` is given."""
    if has_label != (shift_labels is not None):
        raise ValueError(f"has_label={has_label!r} but shift_labels is {'given' if shift_labels is not None else None}")
    x = student_input.detach().requires_grad_()
    w = student_weight.detach().requires_grad_(student_weight.requires_grad)
    with torch.enable_grad():
        loss = LigerFusedLinearKLDivFunction.apply(
            x, w, target, shift_labels, reduction, ignore_index, temperature, eps, accum_dtype
        )
        wanted = (x, w) if w.requires_grad else (x,)
        grads = torch.autograd.grad(loss, wanted)
    return loss.detach(), grads[0], grads[1] if w.requires_grad else None


def fused_linear_kl_div_backward(
    grad_output: torch.Tensor, grad_input: torch.Tensor, grad_weight: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """0.8.5's backward half: the forward half's gradients times the incoming
    gradient, as new tensors (the arguments are not written)."""
    scale = grad_output.reshape(())
    return grad_input * scale.to(grad_input.dtype), (
        grad_weight * scale.to(grad_weight.dtype) if grad_weight is not None else None
    )
