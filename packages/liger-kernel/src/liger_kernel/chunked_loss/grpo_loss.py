"""Group Relative Policy Optimization (and its variants) over a fused LM head, chunked.

Inputs: hidden states ``input`` (B, T, H) of the completion tokens
``selected_token_ids`` (B, T), ``attention_mask`` (B, T) of the tokens that
count, ``advantages`` (B,). Per token, with logits divided by ``temperature``,
    logp     = log softmax(x_t @ W.T + b)[y_t]
    old      = old_per_token_logps, or logp detached (one update per generation)
    coef     = exp(logp - old)                       importance_sampling_level="token"
             = exp(masked mean over t of logp - old)  "sequence" (one per row)
and, by ``loss_type`` (A the row's advantage, eps_lo/eps_hi the clip range):
    grpo, bnpo, dr_grpo, dapo   l = -min(min(coef, delta) A, clamp(coef, 1 - eps_lo, 1 + eps_hi) A)
                                (delta: optional upper clip of the unclipped term)
    cispo                       l = -min(coef, eps_hi).detach() A logp
    sapo                        l = -A (4 / tau) sigmoid(tau (coef - 1)), tau by the sign of A
With ``beta`` != 0 the KL penalty ``beta (exp(ref - logp) - (ref - logp) - 1)`` is
added per token (times coef with ``use_bias_correction_kl``), ``ref`` from
``ref_per_token_logps``, else from the reference model (``ref_input``,
``ref_weight``, ``ref_bias``, no gradients), else logp detached. ``vllm_is_ratio``
(B,), (B, 1) or (B, T) multiplies l when given.
Reduction over the masked tokens:
    grpo, sapo    sum over rows of (row sum / row token count), / B
    bnpo          sum / total token count
    dapo, cispo   sum / num_items_in_batch when given (the trainer's token count over its
                  accumulation window), else / total token count
    dr_grpo       sum / (B * max_completion_length)
Chunks hold ``chunk_size`` rows. Returns ``loss, metrics``: metrics is
``[mean KL]`` (only with beta != 0) followed by the clipped-token fraction.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from liger_kernel.chunked_loss._chunking import chunked_linear_loss, linear_logits, row_chunks

GRPO_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo")
UNSUPPORTED_LOSS_TYPES = ("luspo", "vespo")


def check_loss_type(loss_type: str) -> None:
    """Raise a ValueError naming the supported loss types unless ``loss_type`` is one."""
    if loss_type in UNSUPPORTED_LOSS_TYPES:
        raise ValueError(
            f"GRPO loss_type {loss_type!r} is not supported by the chunked loss; use one of {GRPO_LOSS_TYPES}"
        )
    if loss_type not in GRPO_LOSS_TYPES:
        raise ValueError(f"unknown GRPO loss_type {loss_type!r}; expected one of {GRPO_LOSS_TYPES}")


def selected_log_probs(logits: torch.Tensor, token_ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """Log-probability of each selected token under ``softmax(logits / temperature)``."""
    return F.log_softmax(logits / temperature, dim=-1).gather(-1, token_ids.unsqueeze(-1)).squeeze(-1)


def _check_options(
    loss_type: str,
    importance_sampling_level: str,
    max_completion_length: int | None,
    sapo_temperature_pos: float,
    sapo_temperature_neg: float,
) -> None:
    check_loss_type(loss_type)
    if importance_sampling_level not in ("token", "sequence"):
        raise ValueError(f"importance_sampling_level must be 'token' or 'sequence', got {importance_sampling_level!r}")
    if loss_type == "dr_grpo" and max_completion_length is None:
        raise ValueError("loss_type='dr_grpo' needs max_completion_length")
    if loss_type == "sapo" and min(sapo_temperature_pos, sapo_temperature_neg) <= 0:
        raise ValueError("SAPO temperatures must be > 0")


def _check_shapes(
    _input: torch.Tensor,
    selected_token_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    vllm_is_ratio: torch.Tensor | None,
) -> None:
    if _input.dim() != 3 or selected_token_ids.shape != _input.shape[:2] or attention_mask.shape != _input.shape[:2]:
        raise ValueError(
            f"input must be (batch, seq, hidden), selected_token_ids and attention_mask (batch, seq); got "
            f"{tuple(_input.shape)}, {tuple(selected_token_ids.shape)}, {tuple(attention_mask.shape)}"
        )
    batch, seq = attention_mask.shape
    if vllm_is_ratio is not None and tuple(vllm_is_ratio.shape) not in ((batch,), (batch, 1), (batch, seq)):
        raise ValueError(
            f"vllm_is_ratio must be (batch,), (batch, 1) or (batch, seq) = {(batch, seq)}, "
            f"got {tuple(vllm_is_ratio.shape)}"
        )


def _token_normalizer(
    loss_type: str,
    total_tokens: torch.Tensor,
    batch: int,
    max_completion_length: int | None,
    num_items_in_batch: torch.Tensor | float | None,
) -> torch.Tensor | int:
    """What the summed token loss is divided by (grpo and sapo average per row instead)."""
    if loss_type == "dr_grpo":
        return batch * max_completion_length
    if num_items_in_batch is not None and loss_type in ("dapo", "cispo"):
        return torch.as_tensor(num_items_in_batch, device=total_tokens.device).clamp(min=1)
    return total_tokens


class _Clip(NamedTuple):
    """The clip range and SAPO temperatures of one call (see the module docstring)."""

    low: float
    high: float
    delta: float | None
    sapo_pos: float
    sapo_neg: float


def _policy_objective(
    loss_type: str, coef: torch.Tensor, adv: torch.Tensor, logps: torch.Tensor, clip: _Clip
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token policy loss ``l`` of ``loss_type``, and where coef fell below / above the clip range."""
    no_clip = torch.zeros_like(coef, dtype=torch.bool)
    if loss_type == "cispo":
        return -torch.clamp(coef, max=clip.high).detach() * adv * logps, no_clip, coef > clip.high
    if loss_type == "sapo":
        tau = torch.where(adv > 0, clip.sapo_pos, clip.sapo_neg)
        return -adv * torch.sigmoid(tau * (coef - 1)) * 4 / tau, no_clip, no_clip
    clipped = torch.clamp(coef, 1 - clip.low, 1 + clip.high)
    unclipped = coef if clip.delta is None else torch.clamp(coef, max=clip.delta)
    return -torch.min(unclipped * adv, clipped * adv), coef < 1 - clip.low, coef > 1 + clip.high


def liger_fused_linear_grpo(
    _input: torch.Tensor,
    weight: torch.Tensor,
    selected_token_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    advantages: torch.Tensor,
    bias: torch.Tensor | None = None,
    ref_per_token_logps: torch.Tensor | None = None,
    old_per_token_logps: torch.Tensor | None = None,
    ref_input: torch.Tensor | None = None,
    ref_weight: torch.Tensor | None = None,
    ref_bias: torch.Tensor | None = None,
    beta: float = 0.04,
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    loss_type: str = "dapo",
    max_completion_length: int | None = None,
    importance_sampling_level: str = "token",
    sapo_temperature_pos: float = 1.0,
    sapo_temperature_neg: float = 1.05,
    temperature: float = 1.0,
    compiled: bool = True,
    use_ref_model: bool = True,
    chunk_size: int = 1,
    vllm_is_ratio: torch.Tensor | None = None,
    delta: float | None = None,
    use_bias_correction_kl: bool = False,
    num_items_in_batch: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """GRPO-family loss; ``compiled`` is accepted for compatibility (the math is eager PyTorch)."""
    _check_options(
        loss_type, importance_sampling_level, max_completion_length, sapo_temperature_pos, sapo_temperature_neg
    )
    _check_shapes(_input, selected_token_ids, attention_mask, vllm_is_ratio)
    with_ref_model = use_ref_model and ref_per_token_logps is None and ref_input is not None
    if with_ref_model and ref_weight is None:
        raise ValueError("a reference model needs ref_weight with ref_input")
    batch = _input.shape[0]
    total_tokens = attention_mask.sum().clamp(min=1)
    normalizer = _token_normalizer(loss_type, total_tokens, batch, max_completion_length, num_items_in_batch)
    clip = _Clip(epsilon_low, epsilon_high, delta, sapo_temperature_pos, sapo_temperature_neg)
    # (B,) and (B, 1) broadcast over the tokens alike
    is_ratio = None if vllm_is_ratio is None else vllm_is_ratio.reshape(batch, -1)

    def reference_logps(rows: torch.Tensor, token_ids: torch.Tensor, logps: torch.Tensor) -> torch.Tensor:
        if use_ref_model and ref_per_token_logps is not None:
            return ref_per_token_logps.index_select(0, rows)
        if with_ref_model:
            with torch.no_grad():
                ref_logits = linear_logits(ref_input.index_select(0, rows), ref_weight, ref_bias)
                return selected_log_probs(ref_logits, token_ids, temperature)
        return logps.detach()

    def term(rows: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None):
        token_ids = selected_token_ids.index_select(0, rows)
        logps = selected_log_probs(linear_logits(x, w, b), token_ids, temperature)
        mask = attention_mask.index_select(0, rows).to(logps.dtype)
        adv = advantages.index_select(0, rows).to(logps.dtype).unsqueeze(-1)

        old = logps.detach() if old_per_token_logps is None else old_per_token_logps.index_select(0, rows)
        log_ratio = logps - old
        if importance_sampling_level == "sequence":
            log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1)).unsqueeze(-1)
        coef = torch.exp(log_ratio)

        per_token, is_low, is_high = _policy_objective(loss_type, coef, adv, logps, clip)
        per_token = per_token.expand_as(mask)
        if is_ratio is not None:
            per_token = per_token * is_ratio.index_select(0, rows)

        metrics = []
        if beta != 0.0:
            ref_gap = reference_logps(rows, token_ids, logps) - logps
            kl = torch.exp(ref_gap) - ref_gap - 1
            per_token = per_token + beta * (kl * coef if use_bias_correction_kl else kl)
            metrics.append((kl.detach() * mask).sum() / total_tokens)

        if loss_type in ("grpo", "sapo"):
            loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)).sum() / batch
        else:
            loss = (per_token * mask).sum() / normalizer

        clipped_tokens = ((is_low & (adv < 0)) | (is_high & (adv > 0))).expand_as(mask)
        metrics.append((clipped_tokens * mask).sum() / total_tokens)
        return loss, metrics

    return chunked_linear_loss(_input, weight, bias, row_chunks(batch, chunk_size, _input.device), term)


class LigerFusedLinearGRPOFunction:
    """Function-style entry point: ``.apply(...)`` takes ``liger_fused_linear_grpo``'s arguments."""

    apply = staticmethod(liger_fused_linear_grpo)


class LigerFusedLinearGRPOLoss(torch.nn.Module):
    """GRPO over the LM head: ``loss_fn(_input, lin_weight, selected_token_ids, attention_mask, advantages,
    bias=None, ref_per_token_logps=None, old_per_token_logps=None, ref_input=None, ref_weight=None,
    ref_bias=None, vllm_is_ratio=None, num_items_in_batch=None) -> (loss, metrics)``."""

    def __init__(
        self,
        beta: float = 0.04,
        compiled: bool = True,
        use_ref_model: bool = True,
        chunk_size: int = 1,
        epsilon_low: float = 0.2,
        epsilon_high: float = 0.2,
        loss_type: str = "dapo",
        max_completion_length: int | None = None,
        importance_sampling_level: str = "token",
        sapo_temperature_pos: float = 1.0,
        sapo_temperature_neg: float = 1.05,
        temperature: float = 1.0,
        delta: float | None = None,
        use_bias_correction_kl: bool = False,
        vespo_k_pos: float = 2.0,
        vespo_lambda_pos: float = 3.0,
        vespo_k_neg: float = 3.0,
        vespo_lambda_neg: float = 2.0,
    ):
        super().__init__()
        check_loss_type(loss_type)
        self.beta = beta
        self.compiled = compiled
        self.use_ref_model = use_ref_model
        self.chunk_size = chunk_size
        self.epsilon_low = epsilon_low
        self.epsilon_high = epsilon_high
        self.loss_type = loss_type
        self.max_completion_length = max_completion_length
        self.importance_sampling_level = importance_sampling_level
        self.sapo_temperature_pos = sapo_temperature_pos
        self.sapo_temperature_neg = sapo_temperature_neg
        self.temperature = temperature
        self.delta = delta
        self.use_bias_correction_kl = use_bias_correction_kl
        # accepted for signature compatibility; the VESPO loss type itself is not supported
        self.vespo_k_pos, self.vespo_lambda_pos = vespo_k_pos, vespo_lambda_pos
        self.vespo_k_neg, self.vespo_lambda_neg = vespo_k_neg, vespo_lambda_neg

    def forward(
        self,
        _input,
        lin_weight,
        selected_token_ids,
        attention_mask,
        advantages,
        bias=None,
        ref_per_token_logps=None,
        old_per_token_logps=None,
        ref_input=None,
        ref_weight=None,
        ref_bias=None,
        vllm_is_ratio=None,
        num_items_in_batch=None,
    ):
        return liger_fused_linear_grpo(
            _input,
            lin_weight,
            selected_token_ids,
            attention_mask,
            advantages,
            bias,
            ref_per_token_logps,
            old_per_token_logps,
            ref_input,
            ref_weight,
            ref_bias,
            self.beta,
            self.epsilon_low,
            self.epsilon_high,
            self.loss_type,
            self.max_completion_length,
            self.importance_sampling_level,
            self.sapo_temperature_pos,
            self.sapo_temperature_neg,
            self.temperature,
            self.compiled,
            self.use_ref_model,
            self.chunk_size,
            vllm_is_ratio,
            self.delta,
            self.use_bias_correction_kl,
            num_items_in_batch,
        )
