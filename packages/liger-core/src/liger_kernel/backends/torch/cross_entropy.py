"""Cross-entropy over a vocabulary in pure PyTorch, walked in row chunks.

For row i with logits x (width V), target t, class weights w (ones if None),
smoothing e and z-loss scale s:
    x     <- softcap * tanh(x / softcap)            if softcap is set
    lse   = log(sum(exp(x)));  logp = x - lse
    ce_i  = (1 - e) * w[t] * -logp[t] + (e / V) * sum_j w[j] * -logp[j]
    z_i   = s * lse**2
Rows whose target is ``ignore_index`` contribute nothing. "mean" divides the
sum of ce_i by D_ce = sum of w[t_i] over kept rows (the kept-row count when w
is None) and the sum of z_i by D_z = the kept-row count; a zero divisor (no
kept row) counts as 1, so the mean is then 0. "sum" adds; "none" keeps rows.

Gradient, per kept row, with p = softmax(x) and the divisors folded in:
    dx_j = [(1 - e) * w[t] * (p_j - [j == t]) + (e / V) * (W_sum * p_j - w[j])] / D_ce
           + 2 * s * lse * p_j / D_z,                W_sum = sum_j w[j]
    dx_raw = dx * (1 - (x_capped / softcap)**2)      through the softcap
The forward pass computes it (it needs the same softmax) and keeps it as the
only (BT, V) buffer; backward multiplies it by the incoming gradient.

Extras carry no gradient: z_loss reduced like the loss; token_accuracy, the
fraction of kept rows whose argmax of the raw logits is the target (fp32
scalar, 0 with no kept row); predicted_tokens, each row's argmax (int64, -1 on
ignored rows).

Chunking: CHUNK_ELEMENTS bounds one chunk (rows x V) to 2**24 elements, 64 MiB
in fp32, so the temporaries of :func:`loss_and_grad` stay a few such buffers
whatever the batch and vocabulary. The fused linear cross-entropy uses the same
rule and the same per-chunk math.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import torch

from liger_kernel.backends.torch._common import compute_dtype
from liger_kernel.ops.cross_entropy import loss_dtype

CHUNK_ELEMENTS = 1 << 24


def chunk_rows(vocab: int) -> int:
    """Rows per chunk so that one chunk of fp32 logits holds at most CHUNK_ELEMENTS values."""
    return max(1, CHUNK_ELEMENTS // max(vocab, 1))


def row_chunks(rows: int, vocab: int) -> Iterator[slice]:
    step = chunk_rows(vocab)
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


class ChunkResult(NamedTuple):
    ce: torch.Tensor  # (n,) ce_i, 0 on ignored rows, times the token scale if any
    z: torch.Tensor  # (n,) z_i, 0 on ignored rows, times the token scale if any
    predicted: torch.Tensor  # (n,) int64 argmax, -1 on ignored rows
    grad: torch.Tensor | None  # (n, V) dloss/dlogits, written over the logits


class Divisors(NamedTuple):
    ce: torch.Tensor  # 0-d, in the compute dtype
    z: torch.Tensor
    kept: torch.Tensor  # 0-d int64 count of kept rows


def divisors(
    target: torch.Tensor, weight: torch.Tensor | None, ignore_index: int, reduction: str, dtype: torch.dtype
) -> Divisors:
    """The "mean" divisors over the whole batch (ones for "sum" and "none"); no host sync."""
    keep = target != ignore_index
    kept = keep.sum()
    one = torch.ones((), dtype=dtype, device=target.device)
    if reduction != "mean":
        return Divisors(one, one, kept)
    if weight is None:
        ce_div = kept.to(dtype)
    else:
        ce_div = torch.where(keep, weight[torch.where(keep, target, 0)], 0).sum().to(dtype)
    z_div = kept.to(dtype)
    return Divisors(torch.where(ce_div == 0, one, ce_div), torch.where(z_div == 0, one, z_div), kept)


def loss_and_grad(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    ignore_index: int,
    lse_square_scale: float,
    label_smoothing: float,
    softcap: float | None,
    ce_divisor: torch.Tensor,
    z_divisor: torch.Tensor,
    need_grad: bool,
    token_scaling: bool = False,
    row_scale: torch.Tensor | None = None,
) -> ChunkResult:
    """Per-row loss of one chunk and, if asked, its gradient.

    ``logits`` (n, V) must be a tensor the caller owns, in the compute dtype:
    it is overwritten (capped, then turned into the gradient). ``weight`` is in
    the compute dtype. ``token_scaling`` multiplies each row's loss and gradient
    by the detached probability of its target; ``row_scale`` (n,) further
    multiplies the gradient rows (an incoming per-row gradient).
    """
    vocab = logits.shape[1]
    keep = target != ignore_index
    # A target outside the vocabulary (not ignore_index) is a caller's error that
    # an accelerator cannot report without a host synchronisation: its row reads
    # class 0 and its loss and gradient become NaN (see the op contract).
    out_of_range = keep & ((target < 0) | (target >= vocab))
    safe_target = torch.where(keep & ~out_of_range, target, 0).long()
    predicted = torch.where(keep, logits.argmax(dim=-1), -1)

    if softcap is not None:
        logits.div_(softcap).tanh_().mul_(softcap)
    lse = torch.logsumexp(logits, dim=-1)
    target_logit = logits.gather(1, safe_target.unsqueeze(1)).squeeze(1)
    target_weight = weight[safe_target] if weight is not None else torch.ones_like(lse)
    target_weight = torch.where(out_of_range, torch.nan, target_weight)

    ce = (1.0 - label_smoothing) * target_weight * (lse - target_logit)
    if label_smoothing > 0:
        neg_logp = lse.unsqueeze(1) - logits
        if weight is not None:
            neg_logp.mul_(weight)
        ce = ce + (label_smoothing / vocab) * neg_logp.sum(dim=-1)
        del neg_logp
    z = lse_square_scale * lse.square()
    zero = torch.zeros((), dtype=lse.dtype, device=lse.device)
    ce = torch.where(keep, ce, zero)
    z = torch.where(keep, z, zero)

    row_factor = keep.to(lse.dtype)
    if token_scaling:
        target_prob = torch.exp(target_logit - lse)
        row_factor = row_factor * target_prob
        ce, z = ce * target_prob, z * target_prob
    if not need_grad:
        return ChunkResult(ce, z, predicted, None)

    if row_scale is not None:
        row_factor = row_factor * row_scale.to(lse.dtype)
    cap_slope = 1.0 - (logits / softcap).square_() if softcap is not None else None
    weight_sum = weight.sum() if weight is not None else vocab
    smooth = label_smoothing / vocab
    # dx = p * coef_p - (1 - e) w[t] / D_ce at t - (e / V) w[j] / D_ce, all rows times row_factor
    coef_p = ((1.0 - label_smoothing) * target_weight + smooth * weight_sum) / ce_divisor
    if lse_square_scale:
        coef_p = coef_p + 2.0 * lse_square_scale * lse / z_divisor
    grad = logits.sub_(lse.unsqueeze(1)).exp_().mul_(coef_p.unsqueeze(1))
    if label_smoothing > 0:
        grad.sub_((weight if weight is not None else 1.0) * (smooth / ce_divisor))
    at_target = -(1.0 - label_smoothing) * target_weight / ce_divisor
    grad.scatter_add_(1, safe_target.unsqueeze(1), at_target.unsqueeze(1))
    grad.mul_(row_factor.unsqueeze(1))
    if cap_slope is not None:
        grad.mul_(cap_slope)
    return ChunkResult(ce, z, predicted, grad)


def reduce_rows(
    ce: torch.Tensor, z: torch.Tensor, reduction: str, divs: Divisors, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, z_loss) reduced as the contract says, cast to ``dtype``."""
    if reduction == "none":
        return (ce + z).to(dtype), z.to(dtype)
    ce_total, z_total = ce.sum(), z.sum()
    if reduction == "mean":
        ce_total, z_total = ce_total / divs.ce, z_total / divs.z
    return (ce_total + z_total).to(dtype), z_total.to(dtype)


def token_accuracy(predicted: torch.Tensor, target: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    correct = (predicted == target).sum()
    return (correct.to(torch.float32) / kept.clamp(min=1).to(torch.float32)).reshape(())


def extras(
    z_loss: torch.Tensor,
    predicted: torch.Tensor,
    target: torch.Tensor,
    kept: torch.Tensor,
    return_z_loss: bool,
    return_token_accuracy: bool,
    return_predicted_tokens: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    return (
        z_loss if return_z_loss else None,
        token_accuracy(predicted, target, kept) if return_token_accuracy else None,
        predicted if return_predicted_tokens else None,
    )


def scale_rows(saved: torch.Tensor, grad_output: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """saved * grad_output (a scalar or one value per row) in ``dtype``, a chunk at a time."""
    scale = grad_output.to(saved.dtype)
    out = torch.empty(saved.shape, dtype=dtype, device=saved.device)
    for rows in row_chunks(saved.shape[0], saved.shape[1]):
        factor = scale if scale.dim() == 0 else scale[rows].unsqueeze(1)
        out[rows] = saved[rows] * factor
    return out


class CrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        input: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        lse_square_scale: float = 0.0,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
        softcap: float | None = None,
        return_z_loss: bool = False,
        return_token_accuracy: bool = False,
        return_predicted_tokens: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        math_dtype = compute_dtype(input, weight)
        n_rows, vocab = input.shape
        class_weight = weight.to(math_dtype) if weight is not None else None
        divs = divisors(target, class_weight, ignore_index, reduction, math_dtype)
        need_grad = ctx.needs_input_grad[0]
        # The buffer starts as an fp32 copy of the logits and becomes the gradient, chunk by chunk.
        grad = input.to(math_dtype, memory_format=torch.contiguous_format, copy=True) if need_grad else None
        ce = torch.empty(n_rows, dtype=math_dtype, device=input.device)
        z = torch.empty_like(ce)
        predicted = torch.empty(n_rows, dtype=torch.int64, device=input.device)
        for rows in row_chunks(n_rows, vocab):
            logits = grad[rows] if grad is not None else input[rows].to(math_dtype, copy=True)
            part = loss_and_grad(
                logits,
                target[rows],
                class_weight,
                ignore_index,
                lse_square_scale,
                label_smoothing,
                softcap,
                divs.ce,
                divs.z,
                need_grad,
            )
            ce[rows], z[rows], predicted[rows] = part.ce, part.z, part.predicted
        loss, z_loss = reduce_rows(ce, z, reduction, divs, loss_dtype(input.dtype))
        z_out, accuracy, predicted_out = extras(
            z_loss, predicted, target, divs.kept, return_z_loss, return_token_accuracy, return_predicted_tokens
        )
        ctx.save_for_backward(grad)
        ctx.input_dtype = input.dtype
        ctx.mark_non_differentiable(*(t for t in (z_out, accuracy, predicted_out) if t is not None))
        return loss, z_out, accuracy, predicted_out

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, *_extras: Any) -> tuple[Any, ...]:
        (grad,) = ctx.saved_tensors
        d_input = scale_rows(grad, grad_loss, ctx.input_dtype) if grad is not None else None
        return d_input, None, None, None, None, None, None, None, None, None, None
