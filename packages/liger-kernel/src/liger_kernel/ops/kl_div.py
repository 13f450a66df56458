"""Kullback-Leibler divergence between a prediction given as log-probabilities
and a target, over the last dimension, as ``torch.nn.functional.kl_div``.

Forward, pointwise for y = y_pred (log-probabilities) and t = y_true:
    log_target=False:  l = t * (log(max(t, eps)) - y)      (t probabilities; eps keeps log finite at t = 0)
    log_target=True:   l = exp(t) * (t - y)                (t log-probabilities)
computed in fp32 (fp64 for fp64 input), then reduced:
    "none"       l itself, shape of y_pred
    "sum"        sum of l
    "mean"       sum of l / number of elements
    "batchmean"  sum of l / y_pred.shape[0]   (the row count for 2-D input; torch's rule for any rank)
The loss is float32 for 16- and 32-bit input, float64 for float64 input.

Backward, to y_pred only, with g the incoming gradient (a scalar, or one value
per element for "none") and D the reduction's divisor (1 for "none" and "sum"):
    dl/dy = -t * g / D           log_target=False
    dl/dy = -exp(t) * g / D      log_target=True
stored in y_pred's dtype. y_true takes no gradient: passing a y_true that
requires grad while autograd records is an error (detach it).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch

from liger_kernel.ops._contract import (
    DispatchedFunction,
    require_choice,
    require_no_grad,
    require_real,
    require_same_device,
    require_tensor,
)

#: the reductions a divergence loss takes (0.8.5's name for the type)
REDUCTION_LITERAL = Literal["none", "sum", "mean", "batchmean"]
REDUCTIONS = get_args(REDUCTION_LITERAL)


def loss_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype of the returned loss: float64 if any input is float64, else float32."""
    return torch.float64 if torch.float64 in dtypes else torch.float32


def reduction_divisor(shape: torch.Size, reduction: str) -> int:
    """What the summed loss is divided by under ``reduction``."""
    if reduction == "mean":
        return max(1, shape.numel())
    if reduction == "batchmean":
        return max(1, shape[0])
    return 1


def loss_outputs(reference: torch.Tensor, other: torch.Tensor, reduction: str) -> tuple[Any, ...]:
    """Output spec (see DispatchedFunction.outputs) of a pointwise loss over
    ``reference`` and ``other``: per element for "none", else a scalar, in
    :func:`loss_dtype`."""
    shape = reference.shape if reduction == "none" else ()
    return ((shape, loss_dtype(reference.dtype, other.dtype)),)


def check_distribution_pair(first: str, a: torch.Tensor, second: str, b: torch.Tensor) -> None:
    """Two float tensors of one shape (at least 1-D, non-empty last dimension) on one device."""
    require_tensor(first, a)
    require_tensor(second, b)
    if a.dim() == 0 or a.shape[-1] == 0:
        raise ValueError(f"{first} must have a non-empty last dimension, got shape {tuple(a.shape)}")
    if tuple(b.shape) != tuple(a.shape):
        raise ValueError(f"{second} has shape {tuple(b.shape)}; expected {tuple(a.shape)} (the shape of {first})")
    require_same_device(first, {first: a, second: b})


def check_scalar_options(reduction: str, log_target: bool, eps: float) -> None:
    """The options that are plain values (also checked when a loss module is built)."""
    require_choice("reduction", reduction, REDUCTIONS)
    if not isinstance(log_target, bool):
        raise TypeError(f"log_target must be a bool, got {type(log_target).__name__}")
    # log(max(t, 0)) at t = 0 would be -inf, and 0 * -inf a NaN: eps must be positive
    require_real("eps", eps, minimum=0.0, above_minimum=True)


class LigerKLDivLossFunction(DispatchedFunction):
    op = "kl_div"
    backward_reads = ("y_true",)

    @staticmethod
    def check(
        y_pred: torch.Tensor,
        y_true: torch.Tensor,
        reduction: str = "batchmean",
        log_target: bool = False,
        eps: float = 1e-10,
    ) -> None:
        check_distribution_pair("y_pred", y_pred, "y_true", y_true)
        check_scalar_options(reduction, log_target, eps)
        require_no_grad("y_true", y_true, "y_pred", "torch.nn.functional.kl_div")

    @staticmethod
    def outputs(y_pred, y_true, reduction, *_):
        return loss_outputs(y_pred, y_true, reduction)


def kldiv_forward_triton(
    y_pred: torch.Tensor, y_true: torch.Tensor, log_target: bool, reduction: str, eps: float
) -> torch.Tensor:
    """0.8.5's KL-divergence forward launch, offered as the op itself: the loss
    of :class:`LigerKLDivLossFunction` (note the order: ``log_target`` before
    ``reduction``), on whichever backend the op routes to, with its gradient
    (0.8.5's launch gave none)."""
    return LigerKLDivLossFunction.apply(y_pred, y_true, reduction, log_target, eps)
