"""``triton_grpo_loss``: the GRPO loss over a causal LM's logits, as GRPO trainers call it
(math: :mod:`liger_kernel.ops.grpo_loss`, through :class:`liger_kernel.ops.GrpoLossFunction`
on whichever backend the logits' device routes to).

For ``loss_type="vespo"`` it first computes VESPO's per-row weight phi
(:func:`liger_kernel.chunked_loss.grpo_loss.get_gamma_weights`, detached) from the
policy's log-probabilities (:func:`~liger_kernel.ops.grpo_loss.fused_selective_log_softmax`)
and the old ones, with ``vllm_is_ratio`` folded into it rather than multiplied onto
the loss; padding tokens' log-ratios count as 0 there.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.chunked_loss.grpo_loss import get_gamma_weights
from liger_kernel.ops import GrpoLossFunction
from liger_kernel.ops.grpo_loss import fused_selective_log_softmax


def vespo_weights(
    logits: torch.Tensor,
    old_logp: torch.Tensor | None,
    completion_ids: torch.Tensor,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor | None,
    temperature: float,
    vllm_is_ratio: torch.Tensor | None,
    k_pos: float,
    lambda_pos: float,
    k_neg: float,
    lambda_neg: float,
) -> torch.Tensor:
    """VESPO's phi (B, 1) for these logits: the gamma weighting of the row's
    importance ratio, the vLLM ratio folded in (a (B,) ratio counted once per row)."""
    logp = fused_selective_log_softmax(logits, completion_ids, temperature, completion_mask)
    mask = torch.ones_like(logp) if completion_mask is None else completion_mask.to(logp.dtype)
    log_ratio = torch.zeros_like(logp) if old_logp is None else torch.where(mask != 0, logp - old_logp, 0.0)
    ratio = vllm_is_ratio.unsqueeze(-1) if vllm_is_ratio is not None and vllm_is_ratio.dim() == 1 else vllm_is_ratio
    return get_gamma_weights(advantages, log_ratio, mask, ratio, k_pos, lambda_pos, k_neg, lambda_neg)


def triton_grpo_loss(
    logits: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    completion_ids: torch.Tensor,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor | None = None,
    temperature: float = 0.9,
    beta: float = 0.04,
    eps_low: float = 0.2,
    eps_high: float = 0.4,
    inplace: bool = True,
    loss_type: str = "dapo",
    max_completion_length: int | None = None,
    importance_sampling_level: str = "token",
    reduce: bool = False,
    sapo_temperature_pos: float = 1.0,
    sapo_temperature_neg: float = 1.05,
    vllm_is_ratio: torch.Tensor | None = None,
    delta: float | None = None,
    use_bias_correction_kl: bool = False,
    num_items_in_batch: Any = None,
    vespo_k_pos: float = 2.0,
    vespo_lambda_pos: float = 3.0,
    vespo_k_neg: float = 3.0,
    vespo_lambda_neg: float = 2.0,
) -> tuple[Any, ...]:
    """The GRPO loss of ``logits`` (B, L + 1, V) for ``completion_ids`` (B, L).

    ``reduce=False`` (the default): ``(per_token_loss, per_token_kl, is_clipped)``, each
    (B, L) and multiplied by the mask (``per_token_kl`` None when ``beta`` is 0), for
    the trainer to reduce. ``reduce=True``: ``(loss, metrics)`` with metrics
    ``[mean KL, clipped fraction]``, or ``[clipped fraction]`` when ``beta`` is 0.
    Options as :class:`liger_kernel.ops.GrpoLossFunction`; ``vespo_*`` shape VESPO's
    weight (module docstring)."""
    phi_seq = None
    if loss_type == "vespo":
        if importance_sampling_level != "token":
            raise ValueError("loss_type='vespo' takes importance_sampling_level='token' only")
        phi_seq = vespo_weights(
            logits, old_logp, completion_ids, advantages, completion_mask, temperature, vllm_is_ratio,
            vespo_k_pos, vespo_lambda_pos, vespo_k_neg, vespo_lambda_neg,
        )  # fmt: skip
        vllm_is_ratio = None  # folded into phi
    loss, kl, clipped = GrpoLossFunction.apply(
        logits, old_logp, ref_logp, completion_ids, advantages, completion_mask, temperature, beta, eps_low,
        eps_high, inplace, loss_type, max_completion_length, reduce, importance_sampling_level,
        sapo_temperature_pos, sapo_temperature_neg, vllm_is_ratio, delta, use_bias_correction_kl,
        num_items_in_batch, phi_seq,
    )  # fmt: skip
    if not reduce:
        return loss, kl, clipped
    return loss, ([kl, clipped] if kl is not None else [clipped])
