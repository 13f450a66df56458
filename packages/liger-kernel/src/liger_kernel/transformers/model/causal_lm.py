"""Causal-LM forwards whose training loss never materializes the logits.

One forward serves every dense family of :mod:`liger_kernel.transformers.monkey_patch`
(Llama, Mistral, Ministral, Qwen2/3, Gemma 1/2/3, Phi-3, Granite, OLMo-2/3,
SmolLM3, EXAONE-4, Hunyuan-V1 dense, GLM-4) and one the mixture-of-experts
families (Mixtral, Qwen3-MoE, Hunyuan-V1 MoE, DeepSeek-V2/V3/V4); Llama 4's
text model, whose stock loss has no router term, takes the dense loss with the
router logits passed on (:func:`routed_causal_lm_forward`). The family
differences are read from the config:

- ``final_logit_softcapping`` (Gemma-2/3): logits = c * tanh(logits / c),
  passed to the fused loss as its ``softcap``;
- ``logits_scaling`` (Granite): logits = lm_head(h) / s, which equals
  lm_head(h / s), so the hidden states are scaled before the fused loss;
- ``output_multiplier`` (MuseGlimmer, before its softcap; a config field) and
  ``lm_head_multiplier`` (Falcon-H1, the decoder's attribute set from the
  config): logits = lm_head(h) * m, likewise lm_head(h * m) for the fused loss.

Both hold for the bias-free heads of those families.

0.8.5's per-family ``liger_kernel.transformers.model.<family>.lce_forward``
functions are these two forwards under 0.8.5's parameters (:mod:`._per_family`).

With labels (or ``shift_labels``) and ``skip_logits`` (default: in training),
the loss is the fused linear cross-entropy of the final hidden states against
the next-token labels, and ``logits`` is None. Otherwise the logits are
computed as the stock forward does and the loss, if labels are given, is the
model's own ``loss_function``.

The fused loss reads ``lm_head.weight`` in place of calling ``lm_head``, so it
is used only when ``lm_head`` is a plain ``nn.Linear`` (or PEFT's
``modules_to_save`` copy of one). Any other head (a LoRA layer, a quantized
linear, a module with its own forward hook) is called, and the loss is the
Liger cross-entropy of its logits: its adapters train and nothing is
silently skipped, at the memory of the logits (a warning says so once).

The fused loss is ``loss_utils.LigerForCausalLMLoss``, looked up on every call
(frameworks replace that attribute to adjust it); it and the loss from logits
match Transformers' ``ForCausalLMLoss`` as :mod:`.loss_utils` states.

Loss options, keyword arguments of both forwards (TRL's ``SFTTrainer`` passes
the first two when ``use_liger_kernel=True``):

- ``use_token_scaling``: each token's loss is scaled by the (detached)
  predicted probability of its target (TRL's ``loss_type="dft"``);
- ``return_token_accuracy``: ``outputs.token_accuracy``, the fraction of
  non-ignored targets that are their logits' argmax;
- ``return_predicted_tokens``: ``outputs.predicted_tokens``, that argmax per
  position (-1 where ignored).

They hold on every path: the fused loss, the Liger cross-entropy of a head
that cannot be fused, and evaluation with logits. Any other keyword is passed
to the decoder stack, as the stock forward does; one the decoder does not
declare is reported once in a warning rather than dropped unnoticed.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils import can_return_tuple

from liger_kernel.losses import loss_divisors
from liger_kernel.ops import LigerCrossEntropyFunction
from liger_kernel.transformers.model import loss_utils
from liger_kernel.transformers.model.output_classes import LigerCausalLMOutputWithPast, LigerMoeCausalLMOutputWithPast

logger = logging.getLogger(__name__)

#: Transformers 5.x renamed the output's ``past_key_values`` to ``cache``.
CACHE_FIELD = "cache" if "cache" in {f.name for f in dataclasses.fields(CausalLMOutputWithPast)} else "past_key_values"

#: the loss options (module docstring), keywords of both forwards
LOSS_OPTIONS = ("use_token_scaling", "return_token_accuracy", "return_predicted_tokens")

#: keyword arguments meant for the loss, not for the decoder stack
_LOSS_KWARGS = ("num_items_in_batch", "shift_labels", "ignore_index", *LOSS_OPTIONS)


class CausalLMLoss(NamedTuple):
    """The next-token loss and the extras asked for (None otherwise)."""

    loss: torch.Tensor
    token_accuracy: torch.Tensor | None = None
    predicted_tokens: torch.Tensor | None = None


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


def _token_loss(
    compute: Callable[[str], CausalLMLoss],
    num_items_in_batch: torch.Tensor | int | None,
) -> CausalLMLoss:
    """Run ``compute(reduction)`` and normalise as ``fixed_cross_entropy`` does."""
    if num_items_in_batch is None:
        return compute("mean")
    result = compute("sum")
    return result._replace(loss=loss_utils.normalize_by_items(result.loss, num_items_in_batch))


def fused_causal_lm_loss(
    hidden_states: torch.Tensor,
    lm_head: nn.Linear,
    labels: torch.Tensor | None = None,
    shift_labels: torch.Tensor | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
    softcap: float | None = None,
    use_token_scaling: bool = False,
    return_token_accuracy: bool = False,
    return_predicted_tokens: bool = False,
) -> CausalLMLoss:
    """Next-token loss of ``lm_head(hidden_states)`` without forming the logits;
    ``lm_head`` must be a plain ``nn.Linear`` (see :func:`fusable_lm_head`).

    Computed by ``loss_utils.LigerForCausalLMLoss``, looked up on each call so
    that replacing that module attribute replaces the loss of every patched
    forward."""
    result = loss_utils.LigerForCausalLMLoss(
        hidden_states=hidden_states,
        lm_head_weight=lm_head.weight,
        labels=labels,
        hidden_size=hidden_states.shape[-1],
        num_items_in_batch=num_items_in_batch,
        ignore_index=ignore_index,
        shift_labels=shift_labels,
        final_logit_softcapping=softcap,
        return_token_accuracy=return_token_accuracy,
        return_predicted_tokens=return_predicted_tokens,
        bias=lm_head.bias,
        use_token_scaling=use_token_scaling,
    )
    loss, _, token_accuracy, predicted_tokens = loss_utils.unpack_cross_entropy_result(result)
    return CausalLMLoss(loss, token_accuracy, predicted_tokens)


def logits_causal_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    shift_labels: torch.Tensor | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
    use_token_scaling: bool = False,
    return_token_accuracy: bool = False,
    return_predicted_tokens: bool = False,
) -> CausalLMLoss:
    """The same loss and extras as :func:`fused_causal_lm_loss`, from logits
    already formed (softcapped and scaled as the model's head does), by the
    Liger cross-entropy op."""
    targets = loss_utils.next_token_targets(labels, shift_labels, ignore_index).to(logits.device)
    flat = logits.reshape(-1, logits.shape[-1])

    def compute(reduction: str) -> CausalLMLoss:
        loss, _, accuracy, predicted = LigerCrossEntropyFunction.apply(
            flat,
            targets,
            None,
            ignore_index=ignore_index,
            reduction="none" if use_token_scaling else reduction,
            return_token_accuracy=return_token_accuracy,
            return_predicted_tokens=return_predicted_tokens,
        )
        if use_token_scaling:
            # The cross-entropy op has no token scaling; with no smoothing and
            # no z-loss a row's loss is -log p(target), so exp(-loss) is the
            # probability the scaling multiplies by (0 rows stay 0).
            loss = (loss * torch.exp(-loss).detach()).sum()
            if reduction == "mean":
                loss = loss / loss_divisors(targets, None, ignore_index, "mean", loss.dtype)[0]
        return CausalLMLoss(loss, accuracy, predicted)

    return _token_loss(compute, num_items_in_batch)


_warned: set[str] = set()


def _warn_once(key: str, message: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message, *args)


def liger_causal_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    vocab_size: int,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
    shift_labels: torch.Tensor | None = None,
    use_token_scaling: bool = False,
    **kwargs: Any,
) -> torch.Tensor:
    """Drop-in for Transformers' ``ForCausalLMLoss`` computed by the Liger
    cross-entropy op (installed as the model's ``loss_function`` when a patch
    function is called with ``cross_entropy=True``). The stock forward passes
    it every keyword it was given; ``use_token_scaling`` is honoured, the
    other extras have no place in the stock output and are warned about."""
    extras = [name for name in ("return_token_accuracy", "return_predicted_tokens") if kwargs.get(name)]
    if extras:
        _warn_once(
            "plain-ce-extras",
            "%s asked of the plain cross-entropy loss: the stock forward has no output for it; patch with "
            "fused_linear_cross_entropy=True for outputs.token_accuracy / outputs.predicted_tokens",
            ", ".join(extras),
        )
    result = logits_causal_lm_loss(
        logits.reshape(-1, vocab_size),
        labels=labels,
        shift_labels=shift_labels,
        num_items_in_batch=num_items_in_batch,
        ignore_index=ignore_index,
        use_token_scaling=use_token_scaling,
    )
    return result.loss


def _active_module_to_save(lm_head: nn.Module) -> nn.Module | None:
    """The module PEFT's ``ModulesToSaveWrapper`` calls (lm_head listed in
    ``modules_to_save``), None when it cannot tell."""
    if lm_head.disable_adapters or not lm_head.active_adapters:
        return lm_head.original_module
    active = lm_head.active_adapters[0]
    return lm_head.modules_to_save[active] if active in lm_head.modules_to_save else None


def fusable_lm_head(lm_head: nn.Module) -> nn.Linear | None:
    """The ``nn.Linear`` whose weight and bias the fused loss may read in place
    of calling ``lm_head``, or None when ``lm_head`` computes anything else."""
    peft_utils = sys.modules.get("peft.utils")  # a PEFT wrapper means peft is imported
    wrapper = getattr(peft_utils, "ModulesToSaveWrapper", None)
    if wrapper is not None and isinstance(lm_head, wrapper):
        lm_head = _active_module_to_save(lm_head)
    plain = (
        isinstance(lm_head, nn.Linear)
        and type(lm_head).forward is nn.Linear.forward
        and "forward" not in vars(lm_head)  # accelerate's hooks replace the instance's forward
        and not (lm_head._forward_hooks or lm_head._forward_pre_hooks)
    )
    return lm_head if plain else None


def _loss_and_logits(
    model: Any,
    outputs: Any,
    labels: torch.Tensor | None,
    logits_to_keep: int | torch.Tensor,
    skip_logits: bool | None,
    loss_kwargs: dict[str, Any],
    config: Any = None,
) -> tuple[CausalLMLoss | None, torch.Tensor | None]:
    """(loss and extras or None, logits or None) for the shared part of both
    forwards; ``config`` (default ``model.config``) holds the head's settings
    and the vocabulary size (a vision-language model's ``text_config``)."""
    config = model.config if config is None else config
    hidden_states = _slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
    softcap = getattr(config, "final_logit_softcapping", None)
    logits_scaling = getattr(config, "logits_scaling", None)
    # MuseGlimmer's config field; Falcon-H1's decoder attribute, which its stock head reads
    output_multiplier = getattr(config, "output_multiplier", None)
    if output_multiplier is None:
        output_multiplier = getattr(getattr(model, "model", None), "lm_head_multiplier", None)
    has_targets = labels is not None or loss_kwargs.get("shift_labels") is not None
    if skip_logits is None:
        skip_logits = model.training and has_targets
    if skip_logits and not has_targets:
        raise ValueError("skip_logits=True needs labels or shift_labels to compute a loss from")
    targets = {
        "labels": labels,
        "shift_labels": loss_kwargs.get("shift_labels"),
        "num_items_in_batch": loss_kwargs.get("num_items_in_batch"),
        "ignore_index": loss_kwargs.get("ignore_index", -100),
    }
    options = {name: bool(loss_kwargs.get(name, False)) for name in LOSS_OPTIONS}

    head = fusable_lm_head(model.lm_head) if skip_logits else None
    if head is not None:
        if logits_scaling:
            hidden_states = hidden_states / logits_scaling
        if output_multiplier is not None:
            hidden_states = hidden_states * output_multiplier
        return fused_causal_lm_loss(hidden_states, head, softcap=softcap, **targets, **options), None
    if skip_logits:
        _warn_once(
            f"head-{type(model.lm_head).__qualname__}",
            "lm_head is a %s, not a plain nn.Linear: the loss is computed from its logits (Liger cross-entropy) "
            "so that its own forward (adapters, quantization) runs and trains; the fused linear cross-entropy, "
            "which never forms the logits, needs a plain linear head",
            type(model.lm_head).__name__,
        )

    logits = model.lm_head(hidden_states)
    if logits_scaling:
        logits = logits / logits_scaling
    if output_multiplier is not None:
        logits = logits * output_multiplier
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    result = None
    if has_targets:
        if skip_logits or any(options.values()):
            result = logits_causal_lm_loss(logits, **targets, **options)
        else:
            stock_kwargs = {name: loss_kwargs[name] for name in loss_kwargs if name not in LOSS_OPTIONS}
            result = CausalLMLoss(
                model.loss_function(logits=logits, labels=labels, vocab_size=config.vocab_size, **stock_kwargs)
            )
    return result, None if skip_logits else logits


@functools.cache
def _decoder_keywords(decoder_cls: type) -> frozenset[str]:
    """Keywords the decoder stack declares: its own parameters and
    Transformers' ``TransformersKwargs``."""
    parameters = inspect.signature(decoder_cls.forward).parameters.values()
    names = {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    try:
        from transformers.utils.generic import TransformersKwargs
    except ImportError:  # older Transformers: nothing more is declared
        return frozenset(names)
    return frozenset(names | TransformersKwargs.__optional_keys__ | TransformersKwargs.__required_keys__)


def _warn_undeclared(decoder: nn.Module, kwargs: dict[str, Any]) -> None:
    if torch.compiler.is_compiling():  # the eager calls have warned already; nothing to trace here
        return
    undeclared = sorted(set(kwargs) - _decoder_keywords(type(decoder)))
    if undeclared:
        _warn_once(
            f"kwargs-{type(decoder).__qualname__}-{undeclared}",
            "%s are neither loss options of the Liger causal-LM forward (%s) nor declared by %s.forward; they are "
            "passed to it as the stock forward does, and may be ignored",
            ", ".join(undeclared),
            ", ".join(_LOSS_KWARGS),
            type(decoder).__name__,
        )


def _split_kwargs(decoder: nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the loss keywords out of ``kwargs``; warn of any the decoder does not declare."""
    loss_kwargs = {name: kwargs.pop(name) for name in _LOSS_KWARGS if name in kwargs}
    _warn_undeclared(decoder, kwargs)
    return loss_kwargs


def _extras(result: CausalLMLoss | None) -> dict[str, Any]:
    """The output fields of the loss (its names are the outputs' field names)."""
    return {"loss": None} if result is None else result._asdict()


def _cache_kwargs(cache: Any) -> dict[str, Any]:
    return {} if cache is None else {"cache" if CACHE_FIELD == "cache" else "past_key_values": cache}


def _decode_with_loss(
    self: Any,
    labels: torch.LongTensor | None,
    logits_to_keep: int | torch.Tensor,
    skip_logits: bool | None,
    kwargs: dict[str, Any],
    **decoder_inputs: Any,
) -> tuple[Any, CausalLMLoss | None, torch.Tensor | None]:
    """The decoder's outputs on ``decoder_inputs`` (and the keywords of
    ``kwargs`` that are not loss options), then (loss and extras, logits) of
    the head: what every forward here shares."""
    loss_kwargs = _split_kwargs(self.model, kwargs)
    outputs = self.model(**decoder_inputs, **kwargs)
    result, logits = _loss_and_logits(self, outputs, labels, logits_to_keep, skip_logits, loss_kwargs)
    return outputs, result, logits


def _output_fields(outputs: Any, result: CausalLMLoss | None, logits: torch.Tensor | None) -> dict[str, Any]:
    """The fields every causal-LM output here fills the same way."""
    return {
        **_extras(result),
        "logits": logits,
        "hidden_states": outputs.hidden_states,
        "attentions": outputs.attentions,
        CACHE_FIELD: getattr(outputs, CACHE_FIELD, None),
    }


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
) -> LigerCausalLMOutputWithPast:
    """``<Family>ForCausalLM.forward`` with the fused LM-head loss and the loss
    options (module docstring)."""
    outputs, result, logits = _decode_with_loss(
        self, labels, logits_to_keep, skip_logits, kwargs,
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
        inputs_embeds=inputs_embeds, use_cache=use_cache, **_cache_kwargs(cache),
    )  # fmt: skip
    return LigerCausalLMOutputWithPast(**_output_fields(outputs, result, logits))


@can_return_tuple
def routed_causal_lm_forward(
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
) -> LigerMoeCausalLMOutputWithPast:
    """Mixture-of-experts ``ForCausalLM.forward`` whose stock loss has no
    load-balancing term (Llama 4's text model): the loss of
    :func:`causal_lm_forward`, and the decoder's router logits passed on in a
    mixture-of-experts output (``output_router_logits=True`` reaches the decoder
    as a keyword, as in the stock forward); ``aux_loss`` stays None."""
    outputs, result, logits = _decode_with_loss(
        self, labels, logits_to_keep, skip_logits, kwargs,
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
        inputs_embeds=inputs_embeds, use_cache=use_cache, **_cache_kwargs(cache),
    )  # fmt: skip
    return LigerMoeCausalLMOutputWithPast(
        **_output_fields(outputs, result, logits), router_logits=getattr(outputs, "router_logits", None)
    )


def _load_balancing_loss_func(cls: type) -> Any:
    """The family's ``load_balancing_loss_func``, found through the class
    hierarchy so that subclasses (FSDP's wrappers, user models) still find it;
    None for a family whose stock forward adds no router loss (Hunyuan-V1 MoE,
    DeepSeek-V2/V3 define none)."""
    for klass in cls.__mro__:
        found = getattr(inspect.getmodule(klass), "load_balancing_loss_func", None)
        if found is not None:
            return found
    return None


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
) -> LigerMoeCausalLMOutputWithPast:
    """Mixture-of-experts ``ForCausalLM.forward`` with the fused LM-head loss;
    adds ``router_aux_loss_coef * aux_loss`` (the family's own
    ``load_balancing_loss_func``) as the stock forward does, and none for a
    family that has no such function (its stock forward adds none either; the
    router logits are still returned when asked for)."""
    if output_router_logits is None:
        output_router_logits = self.config.output_router_logits
    outputs, result, logits = _decode_with_loss(
        self, labels, logits_to_keep, skip_logits, kwargs,
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
        inputs_embeds=inputs_embeds, use_cache=use_cache, output_router_logits=output_router_logits,
        **_cache_kwargs(cache),
    )  # fmt: skip
    aux_loss = None
    router_loss = _load_balancing_loss_func(type(self)) if output_router_logits else None
    if router_loss is not None:
        aux_loss = router_loss(outputs.router_logits, self.num_experts, self.num_experts_per_tok, attention_mask)
        if result is not None:
            result = result._replace(loss=result.loss + self.router_aux_loss_coef * aux_loss.to(result.loss.device))
    return LigerMoeCausalLMOutputWithPast(
        **_output_fields(outputs, result, logits), aux_loss=aux_loss, router_logits=outputs.router_logits
    )
