"""Group Relative Policy Optimization (and its variants) over a fused LM head, chunked
(the walk: :mod:`.fused_linear_ppo`).

Per token, with logp the selected token's log-probability (logits divided by
``temperature``), A the row's advantage and eps_lo/eps_hi the clip range:
    old      = old_per_token_logps, or logp detached (one update per generation)
    coef     = exp(logp - old)                        importance_sampling_level="token"
             = exp(masked mean over t of logp - old)   "sequence" (one per row)
and, by ``loss_type``:
    grpo, bnpo, dr_grpo, dapo, luspo   l = -min(min(coef, delta) A, clamp(coef, 1 - eps_lo, 1 + eps_hi) A)
                                       (delta: optional upper clip of the unclipped term)
    cispo                              l = -min(coef, eps_hi).detach() A logp
    sapo                               l = -A (4 / tau) sigmoid(tau (coef - 1)), tau by the sign of A
    vespo                              l = -phi A logp,  phi = get_gamma_weights(...) (detached, per row)
``vllm_is_ratio`` (B,), (B, 1) or (B, T) multiplies l when given (vespo folds it into phi
instead). With ``beta`` != 0 the KL penalty ``beta (exp(ref - logp) - (ref - logp) - 1)``
is added per token (times coef with ``use_bias_correction_kl``), ``ref`` from
``ref_per_token_logps``, else from the reference model, else logp detached.
Reduction over the masked tokens (B the batch size):
    grpo, sapo           sum over rows of (row sum / row token count), / B
    bnpo                 sum / total token count
    dapo, cispo, vespo   sum / tokens per process (``_compute_dapo_normalizer``: num_items_in_batch
                         / world size when given, else the counted tokens)
    dr_grpo              sum / (B * max_completion_length)
    luspo                sum over rows of the row sum, / B (each row weighted by its length)
cispo, sapo and vespo take token-level importance sampling only. Returns ``loss,
metrics``: metrics is ``[mean KL]`` (only with beta != 0) followed by the clipped-token
fraction (of the counted tokens whose coef was clipped in the direction of A).

Differences from liger-kernel 0.8.5, which are the safe choices: luspo's row sums
and vespo's (B, T) ``vllm_is_ratio`` count only the masked tokens (0.8.5 counts
padding positions too when the per-token loss or the ratio is (B, T)).
"""

from __future__ import annotations

import math

import torch

from liger_kernel.chunked_loss._chunking import wants_gradients
from liger_kernel.chunked_loss.fused_linear_ppo import LigerFusedLinearPPOBase
from liger_kernel.ops.grpo_loss import (  # noqa: F401  (the loss types' names, kept here too)
    GRPO_LOSS_TYPES,
    TOKEN_LEVEL_ONLY,
    check_grpo_options,
    check_loss_type,
)

_LOG_MIN_WEIGHT = math.log(1e-8)
_LOG_MAX_WEIGHT = 20.0


def k3_loss_fn(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """The k3 estimator of KL(q || p) from per-token log-probabilities sampled from q:
    exp(log_p - log_q) - (log_p - log_q) - 1, >= 0 (evaluated through expm1, exact
    for the small gaps of a policy near its reference)."""
    gap = log_p - log_q
    return torch.expm1(gap) - gap


def sapo_loss_fn(importance_ratio: torch.Tensor, temperature: float) -> torch.Tensor:
    """SAPO's soft gate of the importance ratio r in place of clipping:
    (4 / tau) sigmoid(tau (r - 1)), whose slope at r = 1 is 1; tau > 0."""
    if temperature <= 0:
        raise ValueError(f"sapo temperature must be > 0, got {temperature}")
    return torch.sigmoid(temperature * (importance_ratio - 1)) * 4 / temperature


def clip_coef_fn(
    coef: torch.Tensor, epsilon_low: float, epsilon_high: float, loss_type: str
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """(clipped ratio, below the clip range, above it) of importance ratio ``coef`` for ``loss_type``:
    cispo clamps at ``epsilon_high`` itself (a raw bound) and detaches, nothing is below;
    sapo and vespo do not clip (None, all False); the others clamp to
    [1 - epsilon_low, 1 + epsilon_high]."""
    never = torch.zeros_like(coef, dtype=torch.bool)
    if loss_type == "cispo":
        return torch.clamp(coef, max=epsilon_high).detach(), never, coef > epsilon_high
    if loss_type in ("sapo", "vespo"):
        return None, never, never
    low, high = 1 - epsilon_low, 1 + epsilon_high
    return torch.clamp(coef, low, high), coef < low, coef > high


@torch.no_grad()
def get_gamma_weights(
    advantages: torch.Tensor,
    log_ratio_per_token: torch.Tensor,
    mask: torch.Tensor,
    importance_sampling_ratio: torch.Tensor | None = None,
    k_pos: float = 2.0,
    lambda_pos: float = 3.0,
    k_neg: float = 3.0,
    lambda_neg: float = 2.0,
) -> torch.Tensor:
    """VESPO's per-row gradient scale, (B, 1), detached.

    With the sequence-level importance weight w (its log the masked sum over tokens of
    ``log_ratio_per_token``, each clamped to [-20, 20], plus the sum of
    log ``importance_sampling_ratio`` when given, then clamped to [log 1e-8, 20]) and
    (k, lambda) = (k_pos, lambda_pos) where the row's advantage is >= 0, else the
    negative pair (lambda at least 1e-4),
        phi(w) = exp(lambda) w^k exp(-lambda w)       (phi(1) = 1)
    evaluated in log space; a non-finite phi is 0.
    """
    mask = mask.to(log_ratio_per_token.dtype)
    log_w = (log_ratio_per_token.clamp(-_LOG_MAX_WEIGHT, _LOG_MAX_WEIGHT) * mask).sum(-1, keepdim=True)
    if importance_sampling_ratio is not None:
        log_is = torch.log(importance_sampling_ratio).clamp(_LOG_MIN_WEIGHT, _LOG_MAX_WEIGHT)
        if log_is.shape[-1] == mask.shape[-1] and log_is.shape[-1] != 1:
            log_is = log_is * mask  # a per-token ratio counts on the counted tokens only
        log_w = log_w + log_is.sum(-1, keepdim=True)
    log_w = log_w.clamp(_LOG_MIN_WEIGHT, _LOG_MAX_WEIGHT)
    non_negative = advantages.reshape(-1, 1) >= 0
    k = torch.where(non_negative, k_pos, k_neg).to(log_w.dtype)
    lam = torch.where(non_negative, lambda_pos, lambda_neg).to(log_w.dtype).clamp(min=1e-4)
    phi = torch.exp(lam + k * log_w - lam * torch.exp(log_w))
    return torch.nan_to_num(phi, nan=0.0, posinf=0.0, neginf=0.0)


class LigerFusedLinearGRPOFunction(LigerFusedLinearPPOBase):
    """GRPO's chunk term (module docstring) on the walk of :class:`LigerFusedLinearPPOBase`."""

    @staticmethod
    def ppo_loss_fn(
        per_token_logps,
        attention_mask,
        advantages,
        full_attention_mask,
        ref_per_token_logps=None,
        old_per_token_logps=None,
        epsilon_low=0.2,
        epsilon_high=0.2,
        beta=0.04,
        loss_type="dapo",
        max_completion_length=None,
        importance_sampling_level="token",
        sapo_temperature_pos=1.0,
        sapo_temperature_neg=1.05,
        vllm_is_ratio=None,
        delta=None,
        use_bias_correction_kl=False,
        vespo_k_pos=2.0,
        vespo_lambda_pos=3.0,
        vespo_k_neg=3.0,
        vespo_lambda_neg=2.0,
        num_items_in_batch=None,
        token_normalizer=None,
        **kwargs,
    ):
        """One chunk's GRPO loss term and metrics; ``attention_mask`` and ``advantages`` are the chunk's rows."""
        logps, mask = per_token_logps, attention_mask
        adv = advantages.unsqueeze(-1)
        batch = full_attention_mask.shape[0]
        total_tokens = full_attention_mask.sum().clamp(min=1)

        old = logps.detach() if old_per_token_logps is None else old_per_token_logps
        log_ratio = logps - old
        log_weight = log_ratio
        if importance_sampling_level == "sequence":
            log_weight = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1)).unsqueeze(-1)
        coef = torch.exp(log_weight)

        clipped, is_low, is_high = clip_coef_fn(coef, epsilon_low, epsilon_high, loss_type)
        if loss_type == "cispo":
            per_token = -clipped * adv * logps
        elif loss_type == "sapo":
            gate = torch.where(
                adv > 0, sapo_loss_fn(coef, sapo_temperature_pos), sapo_loss_fn(coef, sapo_temperature_neg)
            )
            per_token = -adv * gate
        elif loss_type == "vespo":
            phi = get_gamma_weights(
                advantages, log_ratio, mask, vllm_is_ratio, vespo_k_pos, vespo_lambda_pos, vespo_k_neg, vespo_lambda_neg
            )
            per_token = -phi * adv * logps
        else:
            unclipped = coef if delta is None else torch.clamp(coef, max=delta)
            per_token = -torch.min(unclipped * adv, clipped * adv)
        per_token = per_token.expand_as(mask)
        if vllm_is_ratio is not None and loss_type != "vespo":
            per_token = per_token * vllm_is_ratio

        metrics = []
        if beta != 0.0:
            ref = logps.detach() if ref_per_token_logps is None else ref_per_token_logps
            kl = k3_loss_fn(ref, logps)
            per_token = per_token + beta * (kl * coef if use_bias_correction_kl else kl)
            metrics.append((kl.detach() * mask).sum() / total_tokens)

        masked = per_token * mask
        if loss_type in ("grpo", "sapo"):
            loss = (masked.sum(-1) / mask.sum(-1).clamp(min=1)).sum() / batch
        elif loss_type == "bnpo":
            loss = masked.sum() / total_tokens
        elif loss_type == "dr_grpo":
            loss = masked.sum() / (batch * max_completion_length)
        elif loss_type == "luspo":
            loss = masked.sum() / batch
        else:  # dapo, cispo, vespo
            if token_normalizer is None:
                token_normalizer = LigerFusedLinearPPOBase._compute_dapo_normalizer(
                    full_attention_mask, num_items_in_batch
                )
            loss = masked.sum() / token_normalizer

        clipped_tokens = ((is_low & (adv < 0)) | (is_high & (adv > 0))).expand_as(mask)
        metrics.append((clipped_tokens * mask).sum() / total_tokens)
        return loss, metrics

    @classmethod
    def forward(
        cls,
        ctx,
        _input,
        weight,
        selected_token_ids,
        attention_mask,
        advantages,
        bias=None,
        ref_per_token_logps=None,
        old_per_token_logps=None,
        ref_input=None,
        ref_weight=None,
        ref_bias=None,
        beta=0.04,
        epsilon_low=0.2,
        epsilon_high=0.2,
        loss_type="dapo",
        max_completion_length=None,
        importance_sampling_level="token",
        sapo_temperature_pos=1.0,
        sapo_temperature_neg=1.05,
        temperature=1.0,
        compiled=True,
        use_ref_model=True,
        chunk_size=1,
        vllm_is_ratio=None,
        delta=None,
        use_bias_correction_kl=False,
        vespo_k_pos=2.0,
        vespo_lambda_pos=3.0,
        vespo_k_neg=3.0,
        vespo_lambda_neg=2.0,
        num_items_in_batch=None,
    ):
        check_grpo_options(loss_type, importance_sampling_level, sapo_temperature_pos, sapo_temperature_neg, delta)
        return LigerFusedLinearPPOBase.forward(
            cls, ctx, _input, weight, selected_token_ids, attention_mask, advantages, bias,
            ref_per_token_logps, old_per_token_logps, ref_input, ref_weight, ref_bias,
            epsilon_low=epsilon_low, epsilon_high=epsilon_high, beta=beta, loss_type=loss_type,
            max_completion_length=max_completion_length, importance_sampling_level=importance_sampling_level,
            temperature=temperature, compiled=compiled, use_ref_model=use_ref_model, chunk_size=chunk_size,
            sapo_temperature_pos=sapo_temperature_pos, sapo_temperature_neg=sapo_temperature_neg,
            vllm_is_ratio=vllm_is_ratio, delta=delta, use_bias_correction_kl=use_bias_correction_kl,
            vespo_k_pos=vespo_k_pos, vespo_lambda_pos=vespo_lambda_pos, vespo_k_neg=vespo_k_neg,
            vespo_lambda_neg=vespo_lambda_neg, num_items_in_batch=num_items_in_batch,
        )  # fmt: skip

    @staticmethod
    def backward(ctx, grad_output, *grad_metrics):  # type: ignore[override]
        return LigerFusedLinearPPOBase.backward(ctx, grad_output)


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
    vespo_k_pos: float = 2.0,
    vespo_lambda_pos: float = 3.0,
    vespo_k_neg: float = 3.0,
    vespo_lambda_neg: float = 2.0,
    num_items_in_batch: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """GRPO-family loss, ``LigerFusedLinearGRPOFunction.apply``'s arguments; without gradients to take
    (``torch.no_grad``, nothing requiring grad) it only evaluates."""
    args = (
        _input, weight, selected_token_ids, attention_mask, advantages, bias, ref_per_token_logps,
        old_per_token_logps, ref_input, ref_weight, ref_bias, beta, epsilon_low, epsilon_high, loss_type,
        max_completion_length, importance_sampling_level, sapo_temperature_pos, sapo_temperature_neg, temperature,
        compiled, use_ref_model, chunk_size, vllm_is_ratio, delta, use_bias_correction_kl, vespo_k_pos,
        vespo_lambda_pos, vespo_k_neg, vespo_lambda_neg, num_items_in_batch,
    )  # fmt: skip
    if wants_gradients(_input, weight, bias):
        loss, metrics = LigerFusedLinearGRPOFunction.apply(*args)
    else:
        loss, metrics = LigerFusedLinearGRPOFunction.forward(None, *args)
    return loss, list(metrics)


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
        check_grpo_options(loss_type, importance_sampling_level, sapo_temperature_pos, sapo_temperature_neg, delta)
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
            self.vespo_k_pos,
            self.vespo_lambda_pos,
            self.vespo_k_neg,
            self.vespo_lambda_neg,
            num_items_in_batch,
        )
