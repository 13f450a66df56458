"""Gemma-4 text model (``Gemma4ForCausalLM``): the forward that
``apply_liger_kernel_to_gemma4_text`` installs, and liger-kernel 0.8.5's
``causal_forward`` (that forward under 0.8.5's parameters, see
:mod:`liger_kernel.transformers.model._per_family`). 0.8.5's ``multimodal_forward``,
which ``apply_liger_kernel_to_gemma4`` installs on ``Gemma4ForConditionalGeneration``,
is the vision-language forward (:mod:`liger_kernel.transformers.model.vision_language`)
with the same output class.

The loss is the shared causal-LM loss (:mod:`liger_kernel.transformers.model.causal_lm`,
``final_logit_softcapping`` applied); the output keeps what Gemma-4's own output
adds, ``shared_kv_states`` (read by assisted generation with a Gemma-4
assistant when ``return_shared_kv_states=True``) and ``router_logits``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.models.gemma4.modeling_gemma4 import Gemma4CausalLMOutputWithPast
from transformers.utils import can_return_tuple

from liger_kernel.transformers.model._per_family import DENSE, lce_forward_for
from liger_kernel.transformers.model.causal_lm import _cache_kwargs, _decode_with_loss, _output_fields
from liger_kernel.transformers.model.vision_language import MultimodalHead, multimodal_forward_for


@dataclass
class LigerGemma4CausalLMOutputWithPast(Gemma4CausalLMOutputWithPast):
    #: fraction of the non-ignored next-token targets that are the argmax of their logits
    token_accuracy: torch.FloatTensor | None = None
    #: argmax of each position's logits, flattened, -1 where the target is ignored
    predicted_tokens: torch.LongTensor | None = None


@can_return_tuple
def gemma4_causal_lm_forward(
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
) -> LigerGemma4CausalLMOutputWithPast:
    """``Gemma4ForCausalLM.forward`` with the fused LM-head loss and the loss
    options of :func:`~liger_kernel.transformers.model.causal_lm.causal_lm_forward`;
    ``per_layer_inputs`` and the other decoder keywords pass through ``kwargs``."""
    outputs, result, logits = _decode_with_loss(
        self, labels, logits_to_keep, skip_logits, kwargs,
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
        inputs_embeds=inputs_embeds, use_cache=use_cache, **_cache_kwargs(cache),
    )  # fmt: skip
    return LigerGemma4CausalLMOutputWithPast(
        **_output_fields(outputs, result, logits),
        shared_kv_states=getattr(outputs, "shared_kv_states", None),
        router_logits=getattr(outputs, "router_logits", None),
    )


causal_forward = lce_forward_for(
    __name__, DENSE, forward=gemma4_causal_lm_forward, name="causal_forward", var_keyword="loss_kwargs"
)

#: 0.8.5's parameters of ``multimodal_forward``
_MULTIMODAL_PARAMETERS = (
    "input_ids", "pixel_values", "pixel_values_videos", "input_features", "attention_mask", "input_features_mask",
    "position_ids", "image_position_ids", "video_position_ids", "past_key_values", "mm_token_type_ids",
    "inputs_embeds", "labels", "use_cache", "output_attentions", "output_hidden_states", "return_dict",
    "cache_position", "logits_to_keep", "skip_logits",
)  # fmt: skip

HEAD = MultimodalHead("gemma4", "Gemma4CausalLMOutputWithPast", labels_to_model=True, softcap=True)
multimodal_forward = multimodal_forward_for(
    __name__, HEAD, LigerGemma4CausalLMOutputWithPast, _MULTIMODAL_PARAMETERS, name="multimodal_forward",
    var_keyword="lm_kwargs",
)  # fmt: skip

__all__ = ["LigerGemma4CausalLMOutputWithPast", "causal_forward", "gemma4_causal_lm_forward", "multimodal_forward"]
