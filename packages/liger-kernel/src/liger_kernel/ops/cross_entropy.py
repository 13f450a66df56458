"""Cross-entropy over a vocabulary, with the options LLM training uses.

For row i with logits x (width V), target t, class weights w (ones if None),
smoothing e and z-loss scale s:
    x     <- softcap * tanh(x / softcap)            if softcap is set
    lse   = log(sum(exp(x)));  logp = x - lse
    ce_i  = (1 - e) * w[t] * -logp[t] + (e / V) * sum_j w[j] * -logp[j]
    z_i   = s * lse**2
    loss_i = ce_i + z_i
where the smoothing term, in the sums a single pass over the row can keep, is
(e / V) * (W_sum * lse - sum_j w[j] * x_j),  W_sum = sum_j w[j].
Rows whose target is ``ignore_index`` contribute nothing; any other target
outside [0, V) is an error (IndexError, see ``require_target_in_range``), or
where it cannot be checked without a host synchronization, a NaN loss and
gradient for its row. Reduction "mean"
divides the sum of ce_i by sum of w[t_i] over kept rows (the row count when
w is None) and the sum of z_i by the kept-row count; "sum" adds; "none" returns
the per-row loss (BT,). With no kept row the mean is 0, not nan.

Backward, per kept row, with p = softmax(x) and the reduction's divisor folded in:
    dce/dx_j = (1 - e) * w[t] * (p_j - [j == t]) + (e / V) * (W_sum * p_j - w[j])
    dz/dx_j  = 2 * s * lse * p_j
then through the softcap: dx_raw = dx * (1 - tanh(x_raw / softcap)**2).

Extra outputs (None unless requested): z_loss, reduced like the loss (the loss
already includes it); token_accuracy, the fraction of kept rows whose argmax is
the target (a scalar, 0 with no kept row); predicted_tokens, the argmax of every
row (BT,) int64, -1 on ignored rows. None of the extras carries a gradient.

The signature is 0.8.5's: the logits are ``_input`` (``input=`` is accepted
too) and ``weight`` has no default (pass None for no class weights).
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.ops._contract import (
    INDEX_DTYPES,
    DispatchedFunction,
    require_choice,
    require_indices_in_range,
    require_ndim,
    require_real,
    require_rows,
    require_same_device,
    require_shape,
    require_tensor,
)

REDUCTIONS = ("mean", "sum", "none")
#: log2(e): exp(x) = 2 ** (x * LOG2_E), the form kernels evaluate exponentials in
LOG2_E = 1.4426950408889634


def loss_dtype(input_dtype: torch.dtype) -> torch.dtype:
    """The dtype of the returned loss: at least float32."""
    return torch.promote_types(input_dtype, torch.float32)


def loss_outputs(
    input: torch.Tensor,
    rows: int,
    reduction: str,
    return_z_loss: bool,
    return_token_accuracy: bool,
    return_predicted_tokens: bool,
) -> tuple[Any, ...]:
    """Output specs (see DispatchedFunction.outputs) of CE and FLCE: loss and
    z_loss reduced alike in :func:`loss_dtype`, accuracy a float32 scalar,
    predicted tokens int64 per row."""
    reduced = ((rows,) if reduction == "none" else (), loss_dtype(input.dtype))
    return (
        reduced,
        reduced if return_z_loss else None,
        ((), torch.float32) if return_token_accuracy else None,
        ((rows,), torch.int64) if return_predicted_tokens else None,
    )


def check_loss_options(
    target: torch.Tensor,
    rows: int,
    vocab: int,
    weight: torch.Tensor | None,
    weight_name: str,
    label_smoothing: float,
    reduction: str,
    softcap: float | None,
    lse_square_scale: float,
) -> None:
    require_tensor("target", target, INDEX_DTYPES)
    require_shape("target", target, (rows,), "one target per row of the input")
    if weight is not None:
        require_tensor(weight_name, weight)
        require_shape(weight_name, weight, (vocab,), "one weight per class")
    check_scalar_options(label_smoothing, reduction, softcap, lse_square_scale)


def require_target_in_range(target: torch.Tensor, vocab: int, ignore_index: int) -> None:
    """Every target is a class or ``ignore_index``; see
    :func:`~liger_kernel.ops._contract.require_indices_in_range` for where this is
    checked and what the kernels do with a bad one (a NaN row)."""
    require_indices_in_range("target", target, vocab, f"a target of {vocab} classes", ignored=ignore_index)


def check_scalar_options(
    label_smoothing: float, reduction: str, softcap: float | None, lse_square_scale: float = 0.0
) -> None:
    """The cross-entropy options that are plain numbers or names (also checked
    when a loss module is built, before any tensor is seen). A negative z-loss
    scale would reward a large log-sum-exp, so it is refused."""
    require_choice("reduction", reduction, REDUCTIONS)
    require_real("label_smoothing", label_smoothing, minimum=0.0, maximum=1.0)
    require_real("softcap", softcap, minimum=0.0, above_minimum=True, optional=True)
    require_real("lse_square_scale", lse_square_scale, minimum=0.0)


class LigerCrossEntropyFunction(DispatchedFunction):
    op = "cross_entropy"
    overwrites = ("_input",)
    backward_reads = ("_input", "target", "weight")
    keyword_aliases = (("input", "_input"),)

    @staticmethod
    def outputs(_input, target, weight, ignore_index, lse_square_scale, label_smoothing, reduction, softcap,
                return_z_loss, return_token_accuracy, return_predicted_tokens):  # fmt: skip
        return loss_outputs(
            _input, _input.shape[0], reduction, return_z_loss, return_token_accuracy, return_predicted_tokens
        )

    @staticmethod
    def check(
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
    ) -> None:
        require_tensor("_input", _input)
        require_ndim("_input", _input, (2,))
        require_rows("_input", _input, "the vocabulary size")
        check_loss_options(
            target,
            _input.shape[0],
            _input.shape[1],
            weight,
            "weight",
            label_smoothing,
            reduction,
            softcap,
            lse_square_scale,
        )
        require_same_device("_input", {"_input": _input, "target": target, "weight": weight})
        require_target_in_range(target, _input.shape[1], ignore_index)
