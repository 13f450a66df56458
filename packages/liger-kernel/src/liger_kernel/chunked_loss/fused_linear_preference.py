"""Paired preference losses (DPO, ORPO, CPO, SimPO) over a fused LM head, chunk by chunk.

Inputs stack the pairs on the batch dimension, chosen first:
``input`` (2P, T, H), ``target`` (2P, T); row ``i`` is the chosen answer of
pair ``i`` and row ``P + i`` its rejected answer. Per sequence,
    logp(y) = sum over counted tokens t of log softmax(x_t @ W.T + b)[y_t]
(divided by the number of counted tokens when ``average_log_prob``), tokens
equal to ``ignore_index`` not counted. With a reference model the same is
computed, without gradients, from ``ref_input``, ``ref_weight``, ``ref_bias``.
The loss is
    alpha * NLL(chosen) + pair_loss(logp_chosen, logp_rejected, ref logps) / P
where NLL is the chosen rows' token cross-entropy, summed and divided by the
number of counted chosen tokens in the whole batch (only with
``compute_nll_loss``), and each loss supplies ``pair_loss`` (one value
per pair, summed). A chunk holds ``chunk_size`` pairs, both rows of a pair
together (see :mod:`liger_kernel.chunked_loss._chunking`).

:class:`LigerFusedLinearPreferenceBase` is the same walk for a subclass written
against liger-kernel 0.8.5's base: it overrides
``preference_loss_fn(chosen_logps, rejected_logps, full_target, beta=..., **loss_kwargs)``
(with ``ref_chosen_logps``/``ref_rejected_logps`` among the keywords when
``use_ref_model``), which returns the chunk's preference loss already divided
by the batch's number of pairs, alone or followed by extra outputs (0-dim ones
summed over the chunks, others concatenated); its ``forward`` calls
``LigerFusedLinearPreferenceBase.forward(cls, ctx, ...)``.

Returns ``loss, (chosen_logps, rejected_logps, chosen_logits_mean,
rejected_logits_mean, nll_loss, *aux)``: per-pair log-probabilities (P,), the
mean logit over all chosen (rejected) positions and the vocabulary, the NLL
term, and the loss module's extra outputs.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch

from liger_kernel.chunked_loss._chunking import (
    function_gradients,
    function_walk,
    linear_logits,
    paired_row_chunks,
    sequence_log_probs,
    token_log_probs,
)

PairLoss = Callable[
    [torch.Tensor, torch.Tensor, "torch.Tensor | None", "torch.Tensor | None", torch.Tensor, torch.Tensor],
    tuple[torch.Tensor, Sequence[torch.Tensor]],
]
"""``pair_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_tokens,
rejected_tokens) -> (per-pair losses, aux)``; the token counts are each row's counted tokens (at least 1).

``aux`` entries are either per-pair tensors (concatenated over chunks) or 0-dim
sums over the chunk's pairs (summed over chunks, then divided by P).
"""

ChunkPreferenceLoss = Callable[
    [torch.Tensor, torch.Tensor, "torch.Tensor | None", "torch.Tensor | None", torch.Tensor, torch.Tensor],
    tuple[torch.Tensor, Sequence[torch.Tensor]],
]
"""A :data:`PairLoss` already reduced: ``-> (the chunk's loss over the batch's P pairs, aux)``, 0-dim aux
summed over chunks as they are."""

#: positions of _input, weight and bias among a preference Function's arguments (after ctx)
PREFERENCE_SLOTS = (0, 1, 3)


def per_pair_mean(pair_loss: PairLoss, num_pairs: int) -> ChunkPreferenceLoss:
    """``pair_loss``'s per-pair losses summed and its 0-dim aux, each divided by the batch's ``num_pairs``."""

    def chunk_loss(*args: torch.Tensor):
        losses, aux = pair_loss(*args)
        return losses.sum() / num_pairs, [a / num_pairs if a.dim() == 0 else a for a in aux]

    return chunk_loss


def preference_forward(
    ctx,
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None,
    pair_loss: PairLoss | None = None,
    *,
    chunk_loss: ChunkPreferenceLoss | None = None,
    ignore_index: int = -100,
    alpha: float = 1.0,
    compute_nll_loss: bool = True,
    average_log_prob: bool = True,
    chunk_size: int = 1,
    use_ref_model: bool = False,
    ref_input: torch.Tensor | None = None,
    ref_weight: torch.Tensor | None = None,
    ref_bias: torch.Tensor | None = None,
    nll_target: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The paired preference loss of the module docstring, inside a Function's ``forward``
    (``ctx`` None: evaluation). Give ``pair_loss`` (per pair) or ``chunk_loss`` (already reduced)."""
    if input.dim() != 3 or target.shape != input.shape[:2]:
        raise ValueError(
            f"input must be (2 * pairs, seq, hidden) and target (2 * pairs, seq); "
            f"got {tuple(input.shape)} and {tuple(target.shape)}"
        )
    if input.shape[0] % 2:
        raise ValueError(f"the batch stacks chosen then rejected rows, so its size must be even, got {input.shape[0]}")
    if use_ref_model and (ref_input is None or ref_weight is None):
        raise ValueError("use_ref_model=True needs ref_input and ref_weight")
    num_pairs = input.shape[0] // 2
    if (pair_loss is None) == (chunk_loss is None):
        raise TypeError("give exactly one of pair_loss and chunk_loss")
    reduced = chunk_loss if chunk_loss is not None else per_pair_mean(pair_loss, num_pairs)
    seq_len, vocab = input.shape[1], weight.shape[0]
    nll_labels = target if nll_target is None else nll_target
    chosen_tokens = (nll_labels[:num_pairs] != ignore_index).sum().clamp(min=1)
    logits_per_side = num_pairs * seq_len * vocab

    def term(rows: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None):
        half = rows.numel() // 2
        logits = linear_logits(x, w, b)
        chunk_target = target.index_select(0, rows)
        token_logps, mask = token_log_probs(logits, chunk_target, ignore_index)
        logps = sequence_log_probs(token_logps, mask, average_log_prob)

        nll = logits.new_zeros(())
        if compute_nll_loss:
            chosen_token_logps = (
                token_logps[:half]
                if nll_target is None
                else token_log_probs(logits[:half], nll_target.index_select(0, rows[:half]), ignore_index)[0]
            )
            nll = -chosen_token_logps.sum() / chosen_tokens

        ref_chosen = ref_rejected = None
        if use_ref_model:
            with torch.no_grad():
                ref_logits = linear_logits(ref_input.index_select(0, rows), ref_weight, ref_bias)
                ref_logps = sequence_log_probs(
                    *token_log_probs(ref_logits, chunk_target, ignore_index), average_log_prob
                )
                del ref_logits
            ref_chosen, ref_rejected = ref_logps[:half], ref_logps[half:]

        tokens = mask.sum(-1).clamp(min=1).to(logps.dtype)
        preference, aux = reduced(logps[:half], logps[half:], ref_chosen, ref_rejected, tokens[:half], tokens[half:])
        loss = alpha * nll + preference
        metrics = (
            logps[:half],
            logps[half:],
            logits[:half].detach().sum() / logits_per_side,
            logits[half:].detach().sum() / logits_per_side,
            nll,
            *aux,
        )
        return loss, metrics

    chunks = paired_row_chunks(num_pairs, chunk_size, input.device)
    walk = function_walk(ctx, input, weight, bias, PREFERENCE_SLOTS, chunks, term)
    return walk.loss, tuple(walk.metrics)


def first_gradient(grad_output: tuple) -> torch.Tensor:
    """The loss's incoming gradient from ``backward``'s arguments; 0.8.5-style subclasses pass their
    own ``grad_output`` tuple as one argument."""
    first = grad_output[0]
    return first[0] if isinstance(first, (tuple, list)) else first


class LigerFusedLinearPreferenceBase(torch.autograd.Function):
    """Base of the paired preference Functions (module docstring); subclasses supply ``preference_loss_fn``."""

    @staticmethod
    @abstractmethod
    def preference_loss_fn(*args: Any, **kwargs: Any):
        """One chunk's preference loss (module docstring)."""
        raise NotImplementedError("a preference loss defines preference_loss_fn")

    @staticmethod
    def forward(
        cls,
        ctx,
        _input,
        weight,
        target,
        bias=None,
        chunk_size=1,
        ignore_index=-100,
        alpha=1.0,
        beta=0.1,
        compute_nll_loss=True,
        nll_target=None,
        compiled=True,
        use_ref_model=False,
        ref_input=None,
        ref_weight=None,
        ref_bias=None,
        average_log_prob=True,
        **loss_kwargs,
    ):
        """``cls.preference_loss_fn`` walked over the chunks; ``compiled`` is accepted for compatibility
        (the math is eager PyTorch)."""

        def chunk_loss(chosen, rejected, ref_chosen, ref_rejected, *_token_counts):
            kwargs = dict(loss_kwargs)
            if ref_chosen is not None:
                kwargs.update(ref_chosen_logps=ref_chosen, ref_rejected_logps=ref_rejected)
            outputs = cls.preference_loss_fn(chosen, rejected, target, beta=beta, **kwargs)
            loss, *aux = outputs if isinstance(outputs, tuple) else (outputs,)
            return loss, aux

        return preference_forward(
            ctx,
            _input,
            weight,
            target,
            bias,
            chunk_loss=chunk_loss,
            ignore_index=ignore_index,
            alpha=alpha,
            compute_nll_loss=compute_nll_loss,
            average_log_prob=average_log_prob,
            chunk_size=chunk_size,
            use_ref_model=use_ref_model,
            ref_input=ref_input,
            ref_weight=ref_weight,
            ref_bias=ref_bias,
            nll_target=nll_target,
        )

    @staticmethod
    def backward(ctx, *grad_output):  # type: ignore[override]
        """Gradients for _input, weight and bias (positions 0, 1, 3); None for every other argument."""
        return function_gradients(ctx, first_gradient(grad_output))
