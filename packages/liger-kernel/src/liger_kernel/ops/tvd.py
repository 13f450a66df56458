"""Total variation distance between two distributions over the last dimension.

Forward, pointwise for probabilities p and q (rows of width V; any leading
shape is flattened to rows):
    l = 0.5 * |p - q|
computed in fp32 (fp64 for fp64 input). Rows whose ``shift_labels`` entry is
``ignore_index`` contribute 0 and are not counted. With K the number of kept
rows (all rows when ``shift_labels`` is None), the reductions are:
    "none"       l itself, shape of p (0 on ignored rows)
    "sum"        sum of l
    "mean"       sum of l / (K * V)
    "batchmean"  sum of l / K
With no kept row the divisor counts as 1, so the loss is 0, never nan. The
loss is float32 for 16- and 32-bit input, float64 for float64 input.

Backward, with g the incoming gradient (a scalar, or one value per element for
"none") and D the reduction's divisor (1 for "none" and "sum"), 0 on ignored rows:
    dl/dp =  0.5 * sign(p - q) * g / D
    dl/dq = -0.5 * sign(p - q) * g / D
(sign(0) = 0, the subgradient torch's abs takes). p is the input that is
trained; q gets its gradient too when it requires one, at no extra cost.
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import (
    INDEX_DTYPES,
    DispatchedFunction,
    require_choice,
    require_int,
    require_same_device,
    require_tensor,
)
from liger_kernel.ops.kl_div import (
    REDUCTION_LITERAL,  # noqa: F401  (0.8.5 offers it here too)
    REDUCTIONS,
    check_distribution_pair,
    loss_outputs,
)


def check_shift_labels(shift_labels: torch.Tensor | None, reference: str, reference_tensor: torch.Tensor) -> None:
    """``shift_labels``: None, or integer labels, one per row of ``reference``
    (shaped like its leading dimensions, or flat)."""
    if shift_labels is None:
        return
    require_tensor("shift_labels", shift_labels, INDEX_DTYPES)
    leading = tuple(reference_tensor.shape[:-1])
    rows = reference_tensor.numel() // reference_tensor.shape[-1]
    if tuple(shift_labels.shape) not in (leading, (rows,)):
        raise ValueError(
            f"shift_labels has shape {tuple(shift_labels.shape)}; expected {leading} or {(rows,)} "
            f"(one label per row of {reference})"
        )
    require_same_device(reference, {reference: reference_tensor, "shift_labels": shift_labels})


def reduction_divisor(
    shift_labels: torch.Tensor | None,
    ignore_index: int,
    n_rows: int,
    width: int,
    reduction: str,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """What the summed loss is divided by under ``reduction``: a 0-d tensor of
    ``dtype`` on ``device``, computed without a host synchronization (K, the
    kept-row count, is counted on the device; a K of 0 counts as 1)."""
    if reduction in ("none", "sum"):
        return torch.ones((), dtype=dtype, device=device)
    if shift_labels is None:
        kept = torch.full((), float(n_rows), dtype=dtype, device=device)
    else:
        kept = (shift_labels != ignore_index).sum().to(dtype)
    kept = kept.clamp(min=1)
    return kept * width if reduction == "mean" else kept


def check_scalar_options(reduction: str, ignore_index: int) -> None:
    """The options that are plain values (also checked when a loss module is built)."""
    require_choice("reduction", reduction, REDUCTIONS)
    require_int("ignore_index", ignore_index)


class LigerTVDLossFunction(DispatchedFunction):
    op = "tvd"
    backward_reads = ("p", "q", "shift_labels")

    @staticmethod
    def check(
        p: torch.Tensor,
        q: torch.Tensor,
        shift_labels: torch.Tensor | None = None,
        reduction: str = "batchmean",
        ignore_index: int = -100,
    ) -> None:
        check_distribution_pair("p", p, "q", q)
        check_shift_labels(shift_labels, "p", p)
        check_scalar_options(reduction, ignore_index)

    @staticmethod
    def outputs(p, q, shift_labels, reduction, *_):
        return loss_outputs(p, q, reduction)
