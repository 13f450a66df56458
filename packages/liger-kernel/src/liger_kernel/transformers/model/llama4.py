"""Llama 4: liger-kernel 0.8.5's ``lce_forward`` for ``Llama4ForCausalLM`` (the text
model), the shared :func:`~liger_kernel.transformers.model.causal_lm.routed_causal_lm_forward`
(the dense loss, router logits passed on) under 0.8.5's parameters (see
:mod:`liger_kernel.transformers.model._per_family`); and the forward that
``apply_liger_kernel_to_llama4`` installs on ``Llama4ForConditionalGeneration``.

Llama 4's multimodal model is not laid out as the other vision-language models
(:mod:`.vision_language`): it holds the vision tower, the projector and a whole
``Llama4ForCausalLM`` (``language_model``), and its stock forward places the
projected image features among the token embeddings, then computes the loss
from the language model's logits. :func:`multimodal_forward` places them the
same way and hands the labels to the language model's head through
:func:`routed_causal_lm_forward`, so that the loss is fused there.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.utils import can_return_tuple

from liger_kernel.transformers.model._per_family import DENSE, lce_forward_for
from liger_kernel.transformers.model.causal_lm import CACHE_FIELD, routed_causal_lm_forward
from liger_kernel.transformers.model.vision_language import MultimodalHead, output_class

lce_forward = lce_forward_for(__name__, DENSE, forward=routed_causal_lm_forward)

HEAD = MultimodalHead("llama4", "Llama4CausalLMOutputWithPast")
LigerLlama4CausalLMOutputWithPast = output_class(__name__, "LigerLlama4CausalLMOutputWithPast", HEAD)


@can_return_tuple
def multimodal_forward(
    self: Any,
    input_ids: torch.LongTensor | None = None,
    pixel_values: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.LongTensor | None = None,
    cache: Any = None,
    inputs_embeds: torch.Tensor | None = None,
    labels: torch.LongTensor | None = None,
    use_cache: bool | None = None,
    logits_to_keep: int | torch.Tensor = 0,
    mm_encoder_outputs: dict[str, Any] | None = None,
    skip_logits: bool | None = None,
    **kwargs: Any,
) -> Any:
    """``Llama4ForConditionalGeneration.forward`` with the fused linear
    cross-entropy on the language model's head (module docstring); the loss
    options and decoder keywords pass through ``kwargs``."""
    if (input_ids is None) ^ (inputs_embeds is not None):
        raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
    if pixel_values is not None and mm_encoder_outputs is not None:
        raise ValueError("You cannot specify both pixel_values and mm_encoder_outputs at the same time")
    kwargs.pop("vision_feature_select_strategy", None)  # a stock parameter the stock forward does not use
    if cache is None:
        cache = kwargs.pop("past_key_values", None)
    if inputs_embeds is None:
        inputs_embeds = self.get_input_embeddings()(input_ids)
    image_outputs = (mm_encoder_outputs or {}).get("image")
    if image_outputs is None and pixel_values is not None:
        image_outputs = self.get_image_features(pixel_values=pixel_values, return_dict=True)
    if image_outputs is not None:
        features = image_outputs.pooler_output
        flat = features.reshape(-1, features.size(-1)).to(inputs_embeds.device, inputs_embeds.dtype)
        mask = self.get_placeholder_mask(input_ids, inputs_embeds=inputs_embeds, image_features=flat)
        inputs_embeds = inputs_embeds.masked_scatter(mask, flat)
    outputs = routed_causal_lm_forward(
        self.language_model,
        attention_mask=attention_mask,
        position_ids=position_ids,
        cache=cache,
        inputs_embeds=inputs_embeds,
        labels=labels,
        use_cache=use_cache,
        logits_to_keep=logits_to_keep,
        skip_logits=skip_logits,
        **kwargs,
    )
    return LigerLlama4CausalLMOutputWithPast(
        loss=outputs.loss,
        logits=outputs.logits,
        hidden_states=outputs.hidden_states,
        attentions=outputs.attentions,
        image_outputs=image_outputs,
        router_logits=outputs.router_logits,
        token_accuracy=outputs.token_accuracy,
        predicted_tokens=outputs.predicted_tokens,
        **{CACHE_FIELD: getattr(outputs, CACHE_FIELD, None)},
    )


__all__ = ["LigerLlama4CausalLMOutputWithPast", "lce_forward", "multimodal_forward"]
