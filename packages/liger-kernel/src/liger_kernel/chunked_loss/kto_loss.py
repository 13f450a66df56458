"""Kahneman-Tversky Optimization over a fused LM head, chunked (see :mod:`._chunking`).

Rows are unpaired: ``input`` (B, T, H), ``target`` (B, T), ``preference_labels``
(B,) bool, True for a desirable answer. Per sequence, logp is the sum (or,
with ``average_log_prob``, the mean) of counted token log-probabilities, and
    ratio = logp - ref_logp          (logp alone without a reference model)
    loss  = mean over rows of 1 - sigmoid(beta (ratio - kl) m),   m = +1 desirable, -1 not
with ``kl`` an optional detached estimate of KL(policy || reference) (0 when None).
Chunks hold ``chunk_size`` rows. Returns ``loss, (chosen_logps_sum,
rejected_logps_sum, chosen_logits_sum, rejected_logits_sum, chosen_rewards_sum,
rejected_rewards_sum)``: sums over desirable (undesirable) rows of logp, of
every logit at every position, and of the reward ``beta ratio``.
"""

from __future__ import annotations

import torch

from liger_kernel.chunked_loss._chunking import (
    chunked_linear_loss,
    linear_logits,
    row_chunks,
    sequence_log_probs,
    token_log_probs,
)


def liger_fused_linear_kto(
    _input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    preference_labels: torch.Tensor,
    bias: torch.Tensor | None = None,
    ref_input: torch.Tensor | None = None,
    ref_weight: torch.Tensor | None = None,
    ref_bias: torch.Tensor | None = None,
    kl: torch.Tensor | None = None,
    ignore_index: int = -100,
    beta: float = 0.1,
    compiled: bool = True,
    use_ref_model: bool = True,
    average_log_prob: bool = False,
    chunk_size: int = 1,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """KTO loss; ``compiled`` is accepted for compatibility (the math is eager PyTorch)."""
    if _input.dim() != 3 or target.shape != _input.shape[:2]:
        raise ValueError(
            f"input must be (batch, seq, hidden) and target (batch, seq); got {tuple(_input.shape)} and {tuple(target.shape)}"
        )
    if preference_labels is None:
        raise ValueError("KTO needs preference_labels, one bool per row")
    preference_labels = torch.as_tensor(preference_labels, device=_input.device)
    if preference_labels.shape != (_input.shape[0],):
        raise ValueError(
            f"preference_labels must have shape ({_input.shape[0]},), got {tuple(preference_labels.shape)}"
        )
    with_ref = use_ref_model and ref_input is not None
    if with_ref and ref_weight is None:
        raise ValueError("a reference model needs ref_weight with ref_input")
    desirable = preference_labels.bool()
    batch = _input.shape[0]
    kl_term = kl.detach() if isinstance(kl, torch.Tensor) else (0.0 if kl is None else float(kl))

    def term(rows: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None):
        logits = linear_logits(x, w, b)
        chunk_target = target.index_select(0, rows)
        logps = sequence_log_probs(*token_log_probs(logits, chunk_target, ignore_index), average_log_prob)
        ratio = logps
        if with_ref:
            with torch.no_grad():
                ref_logits = linear_logits(ref_input.index_select(0, rows), ref_weight, ref_bias)
                ref_logps = sequence_log_probs(
                    *token_log_probs(ref_logits, chunk_target, ignore_index), average_log_prob
                )
                del ref_logits
            ratio = logps - ref_logps
        chosen = desirable.index_select(0, rows)
        sign = chosen.to(ratio.dtype) * 2 - 1
        loss = (1 - torch.sigmoid(beta * (ratio - kl_term) * sign)).sum() / batch
        logits_per_row = logits.detach().sum(dim=(1, 2))
        rewards = beta * ratio.detach()
        metrics = (
            logps[chosen].sum(),
            logps[~chosen].sum(),
            logits_per_row[chosen].sum(),
            logits_per_row[~chosen].sum(),
            rewards[chosen].sum(),
            rewards[~chosen].sum(),
        )
        return loss, metrics

    loss, metrics = chunked_linear_loss(_input, weight, bias, row_chunks(batch, chunk_size, _input.device), term)
    return loss, tuple(metrics)


class LigerFusedLinearKTOFunction:
    """Function-style entry point: ``.apply(...)`` takes ``liger_fused_linear_kto``'s arguments."""

    apply = staticmethod(liger_fused_linear_kto)


class LigerFusedLinearKTOLoss(torch.nn.Module):
    """KTO over the LM head: ``loss_fn(_input, lin_weight, target, bias=None, preference_labels=None,
    ref_input=None, ref_weight=None, ref_bias=None, kl=None)``."""

    def __init__(
        self,
        ignore_index: int = -100,
        beta: float = 0.1,
        compiled: bool = True,
        use_ref_model: bool = False,
        average_log_prob: bool = False,
        chunk_size: int = 1,
    ):
        super().__init__()
        self.ignore_index = ignore_index
        self.beta = beta
        self.compiled = compiled
        self.use_ref_model = use_ref_model
        self.average_log_prob = average_log_prob
        self.chunk_size = chunk_size

    def forward(
        self,
        _input,
        lin_weight,
        target,
        bias=None,
        preference_labels=None,
        ref_input=None,
        ref_weight=None,
        ref_bias=None,
        kl=None,
    ):
        return liger_fused_linear_kto(
            _input,
            lin_weight,
            target,
            preference_labels,
            bias,
            ref_input,
            ref_weight,
            ref_bias,
            kl,
            self.ignore_index,
            self.beta,
            self.compiled,
            self.use_ref_model,
            self.average_log_prob,
            self.chunk_size,
        )
