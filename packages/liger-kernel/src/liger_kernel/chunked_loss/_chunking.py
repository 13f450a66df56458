"""A loss on top of a linear layer (the LM head), evaluated chunk by chunk over the batch.

Every loss in this package has the form
    loss = sum over chunks k of  L_k(logits_k),   logits_k = x[rows_k] @ W.T + b
where each chunk term L_k already carries the whole batch's normalisation
(divisors are computed once, up front, from the full targets or masks).
Forward walks the chunks. For each one it builds the chunk's logits in a local
autograd graph, evaluates L_k, and takes its gradients at once:
    dx[rows_k] = dL_k / dx[rows_k]      dW += dL_k / dW      db += dL_k / db
then drops the graph, so at most one chunk's (rows, seq, vocab) logits (and
their gradient) are alive at a time, never the whole batch's. Backward only
scales the stored gradients by the incoming scalar gradient. Each loss is a
``torch.autograd.Function`` whose ``forward`` runs the walk (:func:`function_walk`)
and whose ``backward`` is :func:`function_gradients`; with grad mode off, or
nothing to differentiate, the functional forms call ``forward`` without a ctx
and only the chunk terms are evaluated (:func:`apply_or_evaluate`).

Chunk terms may also report detached metrics: a 0-dim metric is summed over
the chunks (terms that are batch means are pre-divided by the batch's size),
any other is concatenated along dim 0 in chunk order.

The math is plain PyTorch, so it runs on any device. Reference-model inputs
(``ref_input``/``ref_weight``/``ref_bias`` of the losses) are used under
``torch.no_grad`` inside the chunk terms and never get gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from liger_kernel.backends.torch._common import compute_dtype

ChunkTerm = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"],
    tuple[torch.Tensor, Sequence[torch.Tensor]],
]
"""``term(rows, x_chunk, weight, bias) -> (loss_k, metrics_k)``; ``rows`` indexes dim 0 of the input."""

HALF_DTYPES = (torch.float16, torch.bfloat16)


def row_chunks(num_rows: int, rows_per_chunk: int, device: torch.device) -> list[torch.Tensor]:
    """Consecutive row indices ``[0, c), [c, 2c), ...`` covering ``num_rows``."""
    step = max(1, int(rows_per_chunk))
    return [torch.arange(start, min(start + step, num_rows), device=device) for start in range(0, num_rows, step)]


def paired_row_chunks(num_pairs: int, pairs_per_chunk: int, device: torch.device) -> list[torch.Tensor]:
    """Chunks that keep each chosen row ``i`` with its rejected row ``num_pairs + i``.

    Each chunk lists its chosen rows first, then their rejected rows in the same order.
    """
    return [torch.cat([rows, rows + num_pairs]) for rows in row_chunks(num_pairs, pairs_per_chunk, device)]


def linear_logits(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weight.T + bias``: the matmul in the inputs' promoted dtype, the result in fp32 (float64 stays)."""
    matmul_dtype = torch.promote_types(x.dtype, weight.dtype)
    logits = (x.to(matmul_dtype) @ weight.to(matmul_dtype).t()).to(compute_dtype(x, weight, bias))
    if bias is not None:
        logits = logits + bias.to(logits.dtype)
    return logits


def token_log_probs(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each target token, and the mask of tokens that count.

    Ignored positions get log-probability 0 (they are gathered at index 0, then masked).
    """
    mask = target != ignore_index
    safe_target = torch.where(mask, target, torch.zeros_like(target))
    logps = F.log_softmax(logits, dim=-1).gather(-1, safe_target.unsqueeze(-1)).squeeze(-1)
    return logps * mask, mask


def sequence_log_probs(token_logps: torch.Tensor, mask: torch.Tensor, average: bool) -> torch.Tensor:
    """Per-sequence sum (or mean over counted tokens) of masked token log-probabilities over the last dim."""
    total = token_logps.sum(-1)
    if average:
        return total / mask.sum(-1).clamp(min=1)
    return total


def accumulator_dtype(t: torch.Tensor) -> torch.dtype:
    """fp32 for half tensors, else their own dtype: the dtype gradients are summed in."""
    return torch.float32 if t.dtype in HALF_DTYPES else t.dtype


class ChunkWalk(NamedTuple):
    loss: torch.Tensor
    metrics: list[torch.Tensor]
    dinput: torch.Tensor | None
    dweight: torch.Tensor | None
    dbias: torch.Tensor | None


def walk_chunks(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    chunks: Sequence[torch.Tensor],
    term: ChunkTerm,
    needs: tuple[bool, bool, bool],
) -> ChunkWalk:
    """Sum the chunk terms and, where ``needs`` (dinput, dweight, dbias) asks, their gradients."""
    need_dx, need_dw, need_db = needs[0], needs[1], needs[2] and bias is not None
    dinput = torch.zeros_like(input) if need_dx else None
    dweight = torch.zeros(weight.shape, dtype=accumulator_dtype(weight), device=weight.device) if need_dw else None
    dbias = torch.zeros(bias.shape, dtype=accumulator_dtype(bias), device=bias.device) if need_db else None
    loss = torch.zeros((), dtype=torch.float64 if input.dtype == torch.float64 else torch.float32, device=input.device)
    summed: list[torch.Tensor | None] = []  # per metric: running sum of a 0-dim metric, None for a per-row one
    pieces: list[list[torch.Tensor]] = []  # per metric: the per-row chunks, in order

    for rows in chunks:
        with torch.enable_grad() if any((need_dx, need_dw, need_db)) else torch.no_grad():
            x = input.index_select(0, rows).detach().requires_grad_(need_dx)
            w = weight.detach().requires_grad_(need_dw)
            b = None if bias is None else bias.detach().requires_grad_(need_db)
            chunk_loss, chunk_metrics = term(rows, x, w, b)
            sources = [(t, acc) for t, acc in ((x, dinput), (w, dweight), (b, dbias)) if acc is not None]
            if sources and chunk_loss.requires_grad:
                grads = torch.autograd.grad(chunk_loss, [t for t, _ in sources], allow_unused=True)
            else:
                grads = [None] * len(sources)
        for (_, acc), grad in zip(sources, grads):
            if grad is None:  # the term does not depend on it (e.g. every token ignored)
                continue
            if acc is dinput:
                dinput.index_copy_(0, rows, grad.to(dinput.dtype))
            else:
                acc.add_(grad)
        loss += chunk_loss.detach()

        if not pieces:
            summed = [torch.zeros_like(m.detach()) if m.dim() == 0 else None for m in chunk_metrics]
            pieces = [[] for _ in chunk_metrics]
        for i, metric in enumerate(chunk_metrics):
            if summed[i] is not None:
                summed[i] = summed[i] + metric.detach()
            else:
                pieces[i].append(metric.detach())

    metrics = [total if total is not None else torch.cat(parts) for total, parts in zip(summed, pieces)]
    return ChunkWalk(loss, metrics, dinput, dweight, dbias)


def save_walk(ctx, walk: ChunkWalk, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """Keep a walk's gradients on an autograd ``ctx`` for :func:`walk_gradients`."""
    ctx.save_for_backward(walk.dinput, walk.dweight, walk.dbias)
    ctx.param_dtypes = (input.dtype, weight.dtype, None if bias is None else bias.dtype)


def walk_gradients(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """(dinput, dweight, dbias) saved by :func:`save_walk`, scaled by the loss's incoming gradient."""

    def scaled(grad: torch.Tensor | None, dtype: torch.dtype | None) -> torch.Tensor | None:
        return None if grad is None else (grad * grad_loss.to(grad.dtype)).to(dtype)

    return tuple(scaled(g, dtype) for g, dtype in zip(ctx.saved_tensors, ctx.param_dtypes))


def function_walk(
    ctx,
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    slots: tuple[int, int, int],
    chunks: Sequence[torch.Tensor],
    term: ChunkTerm,
    input_shape: torch.Size | None = None,
) -> ChunkWalk:
    """The walk inside an autograd Function's ``forward``.

    ``slots`` are the positions of input, weight and bias among ``forward``'s
    arguments (after ctx); their gradients are kept on ``ctx`` for
    :func:`function_gradients`. With ``ctx`` None (evaluation) none are taken.
    ``input_shape`` is the shape of the Function's input argument when ``input``
    is a reshaped view of it.
    """
    check_linear_head(input, weight, bias)
    needs = (False, False, False) if ctx is None else tuple(ctx.needs_input_grad[i] for i in slots)
    walk = walk_chunks(input, weight, bias, chunks, term, needs)
    if input_shape is not None and walk.dinput is not None:
        walk = walk._replace(dinput=walk.dinput.reshape(input_shape))
    if ctx is not None:
        save_walk(ctx, walk, input, weight, bias)
        ctx.gradient_slots = slots
    return walk


def function_gradients(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """``backward``'s answer for a Function that ran :func:`function_walk`: the saved gradients at their
    slots, None for every other argument of the Function being differentiated."""
    grads: list[torch.Tensor | None] = [None] * len(ctx.needs_input_grad)
    for slot, grad in zip(ctx.gradient_slots, walk_gradients(ctx, grad_loss)):
        grads[slot] = grad
    return tuple(grads)


def apply_or_evaluate(function: type[torch.autograd.Function], gradient_args: tuple, *args):
    """``function.apply(*args)`` when autograd records a gradient for one of ``gradient_args``
    (input, weight, bias), else ``function.forward(None, *args)``: evaluation, no gradients taken."""
    if wants_gradients(*gradient_args):
        return function.apply(*args)
    return function.forward(None, *args)


def check_linear_head(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """Raise a ValueError unless ``weight`` is (vocab, hidden) over ``input``'s last dim and ``bias`` (vocab,)."""
    if weight.dim() != 2 or input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"input's last dimension ({input.shape[-1]}) must match weight's hidden size; "
            f"weight must be (vocab, hidden), got {tuple(weight.shape)}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")


def wants_gradients(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether autograd records and one of input, weight, bias requires grad."""
    differentiable = (input, weight) if bias is None else (input, weight, bias)
    return torch.is_grad_enabled() and any(t.requires_grad for t in differentiable)
