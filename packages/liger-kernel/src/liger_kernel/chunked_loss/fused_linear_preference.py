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
``compute_nll_loss``), and each loss module supplies ``pair_loss`` (one value
per pair, summed). A chunk holds ``chunk_size`` pairs, both rows of a pair
together (see :mod:`liger_kernel.chunked_loss._chunking`).

Returns ``loss, (chosen_logps, rejected_logps, chosen_logits_mean,
rejected_logits_mean, nll_loss, *aux)``: per-pair log-probabilities (P,), the
mean logit over all chosen (rejected) positions and the vocabulary, the NLL
term, and the loss module's extra outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from liger_kernel.chunked_loss._chunking import (
    chunked_linear_loss,
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


def fused_linear_preference_loss(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None,
    pair_loss: PairLoss,
    *,
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
    """The paired preference loss described in the module docstring."""
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
        losses, aux = pair_loss(logps[:half], logps[half:], ref_chosen, ref_rejected, tokens[:half], tokens[half:])
        loss = alpha * nll + losses.sum() / num_pairs
        metrics = (
            logps[:half],
            logps[half:],
            logits[:half].detach().sum() / logits_per_side,
            logits[half:].detach().sum() / logits_per_side,
            nll,
            *(a / num_pairs if a.dim() == 0 else a for a in aux),
        )
        return loss, metrics

    loss, metrics = chunked_linear_loss(
        input, weight, bias, paired_row_chunks(num_pairs, chunk_size, input.device), term
    )
    return loss, tuple(metrics)
