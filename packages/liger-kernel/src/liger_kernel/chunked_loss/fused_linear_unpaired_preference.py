"""Unpaired preference losses (KTO) over a fused LM head, chunk by chunk over the rows.

Rows are unpaired: ``input`` (B, T, H), ``target`` (B, T), ``preference_labels``
(B,) bool, True for a desirable answer. Per sequence, logp is the sum (or,
with ``average_log_prob``, the mean) of the counted token log-probabilities of
``log softmax(x_t @ W.T + b)[y_t]``, tokens equal to ``ignore_index`` not
counted; with a reference model, ``ref_logp`` is the same from ``ref_input``,
``ref_weight``, ``ref_bias`` without gradients. A chunk holds ``chunk_size``
rows, and each loss supplies the chunk's loss term, already divided by the
batch's normalisation. The loss is the sum of the chunk terms.

Returns ``loss, (chosen_logps_sum, rejected_logps_sum, chosen_logits_sum,
rejected_logits_sum, *aux)``: sums over desirable (undesirable) rows of logp
and of every logit at every position, then the loss's extra outputs (0-dim
ones summed over the chunks, others concatenated).

:class:`LigerFusedLinearUnpairedPreferenceBase` is the same walk for a subclass
written against liger-kernel 0.8.5's base: it overrides
``preference_loss_fn(log_prob_chunk, preference_labels_chunk, full_target, **loss_kwargs)``
(with ``ref_log_prob_chunk`` among the keywords when ``use_ref_model``), which
returns the chunk's term alone or followed by extra outputs; its ``forward``
calls ``LigerFusedLinearUnpairedPreferenceBase.forward(cls, ctx, ...)``.
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
    row_chunks,
    sequence_log_probs,
    token_log_probs,
)
from liger_kernel.chunked_loss.fused_linear_preference import first_gradient

UnpairedChunkLoss = Callable[
    [torch.Tensor, torch.Tensor, "torch.Tensor | None"], tuple[torch.Tensor, Sequence[torch.Tensor]]
]
"""``chunk_loss(logps, desirable, ref_logps) -> (the chunk's loss term, aux)``; per-row (rows,) inputs."""

#: positions of _input, weight and bias among an unpaired preference Function's arguments (after ctx)
UNPAIRED_SLOTS = (0, 1, 4)


def unpaired_preference_forward(
    ctx,
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    preference_labels: torch.Tensor,
    bias: torch.Tensor | None,
    chunk_loss: UnpairedChunkLoss,
    *,
    ignore_index: int = -100,
    average_log_prob: bool = False,
    chunk_size: int = 1,
    use_ref_model: bool = False,
    ref_input: torch.Tensor | None = None,
    ref_weight: torch.Tensor | None = None,
    ref_bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The walk of the module docstring inside a Function's ``forward`` (``ctx`` None: evaluation)."""
    if input.dim() != 3 or target.shape != input.shape[:2]:
        raise ValueError(
            f"input must be (batch, seq, hidden) and target (batch, seq); "
            f"got {tuple(input.shape)} and {tuple(target.shape)}"
        )
    if preference_labels is None:
        raise ValueError("an unpaired preference loss needs preference_labels, one bool per row")
    preference_labels = torch.as_tensor(preference_labels, device=input.device)
    if preference_labels.shape != (input.shape[0],):
        raise ValueError(f"preference_labels must have shape ({input.shape[0]},), got {tuple(preference_labels.shape)}")
    if use_ref_model and (ref_input is None or ref_weight is None):
        raise ValueError("use_ref_model=True needs ref_input and ref_weight")
    desirable = preference_labels.bool()

    def term(rows: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None):
        logits = linear_logits(x, w, b)
        chunk_target = target.index_select(0, rows)
        logps = sequence_log_probs(*token_log_probs(logits, chunk_target, ignore_index), average_log_prob)
        ref_logps = None
        if use_ref_model:
            with torch.no_grad():
                ref_logits = linear_logits(ref_input.index_select(0, rows), ref_weight, ref_bias)
                ref_logps = sequence_log_probs(
                    *token_log_probs(ref_logits, chunk_target, ignore_index), average_log_prob
                )
                del ref_logits
        chosen = desirable.index_select(0, rows)
        loss, aux = chunk_loss(logps, chosen, ref_logps)
        logits_per_row = logits.detach().sum(dim=(1, 2))
        detached = logps.detach()
        metrics = (
            detached[chosen].sum(),
            detached[~chosen].sum(),
            logits_per_row[chosen].sum(),
            logits_per_row[~chosen].sum(),
            *aux,
        )
        return loss, metrics

    chunks = row_chunks(input.shape[0], chunk_size, input.device)
    walk = function_walk(ctx, input, weight, bias, UNPAIRED_SLOTS, chunks, term)
    return walk.loss, tuple(walk.metrics)


class LigerFusedLinearUnpairedPreferenceBase(torch.autograd.Function):
    """Base of the unpaired preference Functions (module docstring); subclasses supply ``preference_loss_fn``."""

    @staticmethod
    @abstractmethod
    def preference_loss_fn(*args: Any, **kwargs: Any):
        """One chunk's loss term (module docstring)."""
        raise NotImplementedError("an unpaired preference loss defines preference_loss_fn")

    @staticmethod
    def forward(
        cls,
        ctx,
        _input,
        weight,
        target,
        preference_labels,
        bias=None,
        chunk_size=1,
        ignore_index=-100,
        compiled=True,
        use_ref_model=False,
        ref_input=None,
        ref_weight=None,
        ref_bias=None,
        average_log_prob=False,
        **loss_kwargs,
    ):
        """``cls.preference_loss_fn`` walked over the chunks; ``compiled`` is accepted for compatibility
        (the math is eager PyTorch)."""

        def chunk_loss(logps, desirable, ref_logps):
            kwargs = dict(loss_kwargs)
            if ref_logps is not None:
                kwargs["ref_log_prob_chunk"] = ref_logps
            outputs = cls.preference_loss_fn(logps, desirable, target, **kwargs)
            loss, *aux = outputs if isinstance(outputs, tuple) else (outputs,)
            return loss, aux

        return unpaired_preference_forward(
            ctx,
            _input,
            weight,
            target,
            preference_labels,
            bias,
            chunk_loss,
            ignore_index=ignore_index,
            average_log_prob=average_log_prob,
            chunk_size=chunk_size,
            use_ref_model=use_ref_model,
            ref_input=ref_input,
            ref_weight=ref_weight,
            ref_bias=ref_bias,
        )

    @staticmethod
    def backward(ctx, *grad_output):  # type: ignore[override]
        """Gradients for _input, weight and bias (positions 0, 1, 4); None for every other argument."""
        return function_gradients(ctx, first_gradient(grad_output))
