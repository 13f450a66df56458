"""Causal-LM forwards whose training loss never materializes the logits.

One forward serves every dense family of :mod:`liger_kernel.transformers.monkey_patch`
(Llama, Mistral, Qwen2/3, Gemma 1/2/3, Phi-3, Granite, OLMo-2) and one the
mixture-of-experts families (Mixtral, Qwen3-MoE); the family differences are
read from the config:

- ``final_logit_softcapping`` (Gemma-2/3): logits = c * tanh(logits / c),
  passed to the fused loss as its ``softcap``;
- ``logits_scaling`` (Granite): logits = lm_head(h) / s, which equals
  lm_head(h / s), so the hidden states are scaled before the fused loss.

With labels (or ``shift_labels``) and ``skip_logits`` (default: in training),
the loss is the fused linear cross-entropy of the final hidden states against
the next-token labels, and ``logits`` is None. Otherwise the logits are
computed as the stock forward does and the loss, if labels are given, is the
model's own ``loss_function``.

The loss matches Transformers' ``ForCausalLMLoss``: labels are shifted left by
one and padded with ``ignore_index`` (unless ``shift_labels`` is given, already
shifted); with ``num_items_in_batch`` (gradient accumulation) the loss is the
sum over tokens divided by it, else the mean over non-ignored tokens.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import torch
import torch.nn.functional as F
from transformers.modeling_outputs import CausalLMOutputWithPast, MoeCausalLMOutputWithPast
from transformers.utils import can_return_tuple

from liger_kernel.ops import LigerCrossEntropyFunction, LigerFusedLinearCrossEntropyFunction

#: Transformers 5.x renamed the output's ``past_key_values`` to ``cache``.
CACHE_FIELD = "cache" if "cache" in {f.name for f in dataclasses.fields(CausalLMOutputWithPast)} else "past_key_values"

#: keyword arguments meant for the loss, not for the decoder stack
_LOSS_KWARGS = ("num_items_in_batch", "shift_labels", "ignore_index")


def _slice_logits_to_keep(hidden_states: torch.Tensor, logits_to_keep: int | torch.Tensor) -> torch.Tensor:
    """The positions whose logits are wanted, as Transformers selects them:
    an int keeps the last n (0: all), a 1-D tensor those positions, a 2-D
    integer tensor positions per sample, a 2-D bool tensor a mask (flattened)."""
    if isinstance(logits_to_keep, torch.Tensor) and logits_to_keep.ndim == 2:
        if logits_to_keep.dtype == torch.bool:
            return hidden_states[logits_to_keep]
        return torch.take_along_dim(hidden_states, logits_to_keep[..., None], dim=1)
    if isinstance(logits_to_keep, int):
        return hidden_states[:, slice(-logits_to_keep, None), :]
    return hidden_states[:, logits_to_keep, :]


def _next_token_targets(
    labels: torch.Tensor | None, shift_labels: torch.Tensor | None, ignore_index: int
) -> torch.Tensor:
    if shift_labels is None:
        shift_labels = F.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    return shift_labels.reshape(-1)


def _token_loss(
    compute: Any,
    num_items_in_batch: torch.Tensor | int | None,
) -> torch.Tensor:
    """Run ``compute(reduction)`` and normalise as ``fixed_cross_entropy`` does."""
    if num_items_in_batch is None:
        return compute("mean")
    loss = compute("sum")
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch


def fused_causal_lm_loss(
    hidden_states: torch.Tensor,
    lm_head: torch.nn.Module,
    labels: torch.Tensor | None = None,
    shift_labels: torch.Tensor | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
    softcap: float | None = None,
) -> torch.Tensor:
    """Next-token loss of ``lm_head(hidden_states)`` without forming the logits."""
    targets = _next_token_targets(labels, shift_labels, ignore_index).to(hidden_states.device)
    flat = hidden_states.reshape(-1, hidden_states.shape[-1])
    if flat.shape[0] != targets.shape[0]:
        raise ValueError(
            f"{flat.shape[0]} positions are kept for the loss but the labels give {targets.shape[0]} targets; "
            "with logits_to_keep, pass labels (or shift_labels) for the kept positions only"
        )
    bias = getattr(lm_head, "bias", None)

    def compute(reduction: str) -> torch.Tensor:
        loss, _, _, _ = LigerFusedLinearCrossEntropyFunction.apply(
            flat, lm_head.weight, targets, bias, None, ignore_index, 0.0, 0.0, reduction, softcap
        )
        return loss

    return _token_loss(compute, num_items_in_batch)


def liger_causal_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    vocab_size: int,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
    shift_labels: torch.Tensor | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Drop-in for Transformers' ``ForCausalLMLoss`` computed by the Liger
    cross-entropy op (installed as the model's ``loss_function`` when a patch
    function is called with ``cross_entropy=True``)."""
    targets = _next_token_targets(labels, shift_labels, ignore_index).to(logits.device)
    flat = logits.reshape(-1, vocab_size)

    def compute(reduction: str) -> torch.Tensor:
        loss, _, _, _ = LigerCrossEntropyFunction.apply(flat, targets, None, ignore_index, 0.0, 0.0, reduction)
        return loss

    return _token_loss(compute, num_items_in_batch)


def _loss_and_logits(
    model: Any,
    outputs: Any,
    labels: torch.Tensor | None,
    logits_to_keep: int | torch.Tensor,
    skip_logits: bool | None,
    loss_kwargs: dict[str, Any],
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(loss or None, logits or None) for the shared part of both forwards."""
    config = model.config
    hidden_states = _slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
    softcap = getattr(config, "final_logit_softcapping", None)
    logits_scaling = getattr(config, "logits_scaling", None)
    has_targets = labels is not None or loss_kwargs.get("shift_labels") is not None
    if skip_logits is None:
        skip_logits = model.training and has_targets
    if skip_logits and not has_targets:
        raise ValueError("skip_logits=True needs labels or shift_labels to compute a loss from")

    if skip_logits:
        if logits_scaling:
            hidden_states = hidden_states / logits_scaling
        loss = fused_causal_lm_loss(
            hidden_states,
            model.lm_head,
            labels=labels,
            shift_labels=loss_kwargs.get("shift_labels"),
            num_items_in_batch=loss_kwargs.get("num_items_in_batch"),
            ignore_index=loss_kwargs.get("ignore_index", -100),
            softcap=softcap,
        )
        return loss, None

    logits = model.lm_head(hidden_states)
    if logits_scaling:
        logits = logits / logits_scaling
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    loss = None
    if has_targets:
        loss = model.loss_function(logits=logits, labels=labels, vocab_size=config.vocab_size, **loss_kwargs)
    return loss, logits


def _split_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {name: kwargs.pop(name) for name in _LOSS_KWARGS if name in kwargs}


def _cache_kwargs(cache: Any) -> dict[str, Any]:
    return {} if cache is None else {"cache" if CACHE_FIELD == "cache" else "past_key_values": cache}


@can_return_tuple
def causal_lm_forward(
    self: Any,
    input_ids: torch.LongTensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.LongTensor | None = None,
    cache: Any = None,
    inputs_embeds: torch.Tensor | None = None,
    labels: torch.LongTensor | None = None,
    use_cache: bool | None = None,
    logits_to_keep: int | torch.Tensor = 0,
    skip_logits: bool | None = None,
    **kwargs: Any,
) -> CausalLMOutputWithPast:
    """``<Family>ForCausalLM.forward`` with the fused LM-head loss (module docstring)."""
    loss_kwargs = _split_kwargs(kwargs)
    outputs = self.model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        inputs_embeds=inputs_embeds,
        use_cache=use_cache,
        **_cache_kwargs(cache),
        **kwargs,
    )
    loss, logits = _loss_and_logits(self, outputs, labels, logits_to_keep, skip_logits, loss_kwargs)
    return CausalLMOutputWithPast(
        loss=loss,
        logits=logits,
        hidden_states=outputs.hidden_states,
        attentions=outputs.attentions,
        **{CACHE_FIELD: getattr(outputs, CACHE_FIELD, None)},
    )


def _load_balancing_loss_func(cls: type) -> Any:
    """The family's ``load_balancing_loss_func``, found through the class
    hierarchy so that subclasses (FSDP's wrappers, user models) still find it."""
    for klass in cls.__mro__:
        found = getattr(inspect.getmodule(klass), "load_balancing_loss_func", None)
        if found is not None:
            return found
    raise TypeError(f"{cls.__name__} is not a mixture-of-experts model: no load_balancing_loss_func in its modules")


@can_return_tuple
def moe_causal_lm_forward(
    self: Any,
    input_ids: torch.LongTensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.LongTensor | None = None,
    cache: Any = None,
    inputs_embeds: torch.Tensor | None = None,
    labels: torch.LongTensor | None = None,
    use_cache: bool | None = None,
    output_router_logits: bool | None = None,
    logits_to_keep: int | torch.Tensor = 0,
    skip_logits: bool | None = None,
    **kwargs: Any,
) -> MoeCausalLMOutputWithPast:
    """Mixture-of-experts ``ForCausalLM.forward`` with the fused LM-head loss;
    adds ``router_aux_loss_coef * aux_loss`` (the family's own
    ``load_balancing_loss_func``) as the stock forward does."""
    if output_router_logits is None:
        output_router_logits = self.config.output_router_logits
    loss_kwargs = _split_kwargs(kwargs)
    outputs = self.model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        inputs_embeds=inputs_embeds,
        use_cache=use_cache,
        output_router_logits=output_router_logits,
        **_cache_kwargs(cache),
        **kwargs,
    )
    loss, logits = _loss_and_logits(self, outputs, labels, logits_to_keep, skip_logits, loss_kwargs)
    aux_loss = None
    if output_router_logits:
        aux_loss = _load_balancing_loss_func(type(self))(
            outputs.router_logits, self.num_experts, self.num_experts_per_tok, attention_mask
        )
        if loss is not None:
            loss = loss + self.router_aux_loss_coef * aux_loss.to(loss.device)
    return MoeCausalLMOutputWithPast(
        loss=loss,
        aux_loss=aux_loss,
        logits=logits,
        hidden_states=outputs.hidden_states,
        attentions=outputs.attentions,
        router_logits=outputs.router_logits,
        **{CACHE_FIELD: getattr(outputs, CACHE_FIELD, None)},
    )
