"""Cross-entropy in pure PyTorch (math: :mod:`liger_kernel.ops.cross_entropy`).

Layout: the rows are walked in chunks of at most CHUNK_ELEMENTS (2**24)
values, 64 MiB in fp32, so the temporaries of :func:`loss_and_grad` stay a few
such buffers whatever the batch and vocabulary. The math runs in fp32 (fp64
for fp64 inputs). The forward forms the gradient too (it needs the same
softmax) and keeps it as the only (BT, V) buffer; backward multiplies it by
the incoming gradient. The fused linear cross-entropy runs the same per-chunk
function as its row kernel.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import torch

from liger_kernel.backends.torch._common import compute_dtype
from liger_kernel.losses import loss_divisors, reduce_rows, token_accuracy
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
) -> ChunkResult:
    """Per-row loss of one chunk and, if asked, its gradient.

    ``logits`` (n, V) must be a tensor the caller owns, in the compute dtype:
    it is overwritten (capped, then turned into the gradient). ``weight`` is in
    the compute dtype. ``token_scaling`` multiplies each row's loss and gradient
    by the detached probability of its target. ``ce`` and ``z`` come back not
    yet divided by the divisors (the gradient is).
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


def row_losses(part: ChunkResult, divisors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss_i, z_i) of a chunk divided by the reduction's divisors (D_ce, D_z)."""
    z = part.z / divisors[1]
    return part.ce / divisors[0] + z, z


def extras(
    z_loss: torch.Tensor,
    predicted: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int,
    return_z_loss: bool,
    return_token_accuracy: bool,
    return_predicted_tokens: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    return (
        z_loss if return_z_loss else None,
        token_accuracy(predicted, target, ignore_index) if return_token_accuracy else None,
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
        math_dtype = compute_dtype(input, weight)
        n_rows, vocab = input.shape
        class_weight = weight.to(math_dtype) if weight is not None else None
        divisors = loss_divisors(target, class_weight, ignore_index, reduction, math_dtype)
        need_grad = ctx.needs_input_grad[0]
        # The buffer starts as an fp32 copy of the logits and becomes the gradient, chunk by chunk.
        grad = input.to(math_dtype, memory_format=torch.contiguous_format, copy=True) if need_grad else None
        loss_rows = torch.empty(n_rows, dtype=math_dtype, device=input.device)
        z_rows = torch.empty_like(loss_rows)
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
                divisors[0],
                divisors[1],
                need_grad,
            )
            (loss_rows[rows], z_rows[rows]), predicted[rows] = row_losses(part, divisors), part.predicted
        out_dtype = loss_dtype(input.dtype)
        loss, z_loss = reduce_rows(loss_rows, reduction).to(out_dtype), reduce_rows(z_rows, reduction).to(out_dtype)
        z_out, accuracy, predicted_out = extras(
            z_loss, predicted, target, ignore_index, return_z_loss, return_token_accuracy, return_predicted_tokens
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
