"""MuseGlimmer: liger-kernel 0.8.5's ``lce_forward`` for
``MuseGlimmerForConditionalGeneration``, the forward that
:func:`~liger_kernel.transformers.monkey_patch.apply_liger_kernel_to_muse_glimmer`
installs.

The vision tower, the adapter and the placement of the image and video
features among the token embeddings are the stock model's (``self.model``);
only the text head changes. MuseGlimmer's logits are
``c * tanh(lm_head(h) * m / c)`` (``m``: ``text_config.output_multiplier``,
``c``: ``text_config.final_logit_softcapping``); in training the fused linear
cross-entropy computes that loss from ``h * m`` with softcap ``c`` (the head has
no bias) without forming the logits. Otherwise, and for the loss options, it
is the shared causal-LM forward's
(:mod:`liger_kernel.transformers.model.causal_lm`), read from ``text_config``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.models.muse_glimmer.modeling_muse_glimmer import MuseGlimmerCausalLMOutputWithPast
from transformers.utils import can_return_tuple

from liger_kernel.transformers.model.causal_lm import (
    CACHE_FIELD,
    _cache_kwargs,
    _extras,
    _loss_and_logits,
    _split_kwargs,
)


@dataclass
class LigerMuseGlimmerCausalLMOutputWithPast(MuseGlimmerCausalLMOutputWithPast):
    #: fraction of the non-ignored next-token targets that are the argmax of their logits
    token_accuracy: torch.FloatTensor | None = None
    #: argmax of each position's logits, flattened, -1 where the target is ignored
    predicted_tokens: torch.LongTensor | None = None


@can_return_tuple
def lce_forward(
    self: Any,
    input_ids: torch.LongTensor | None = None,
    pixel_values: torch.Tensor | None = None,
    image_grid_thw: torch.LongTensor | None = None,
    pixel_values_videos: torch.Tensor | None = None,
    video_grid_thw: torch.LongTensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.LongTensor | None = None,
    past_key_values: Any = None,
    inputs_embeds: torch.Tensor | None = None,
    labels: torch.LongTensor | None = None,
    use_cache: bool | None = None,
    logits_to_keep: int | torch.Tensor = 0,
    skip_logits: bool | None = None,
    **kwargs: Any,
) -> LigerMuseGlimmerCausalLMOutputWithPast:
    """``MuseGlimmerForConditionalGeneration.forward`` with the fused linear
    cross-entropy loss and the loss options (module docstring);
    ``past_key_values`` is Transformers 5's ``cache`` (either name is taken)."""
    if past_key_values is None:
        past_key_values = kwargs.pop("cache", None)
    loss_kwargs = _split_kwargs(self.model, kwargs)
    outputs = self.model(
        input_ids=input_ids,
        pixel_values=pixel_values,
        image_grid_thw=image_grid_thw,
        pixel_values_videos=pixel_values_videos,
        video_grid_thw=video_grid_thw,
        attention_mask=attention_mask,
        position_ids=position_ids,
        inputs_embeds=inputs_embeds,
        use_cache=use_cache,
        **_cache_kwargs(past_key_values),
        **kwargs,
    )
    result, logits = _loss_and_logits(
        self, outputs, labels, logits_to_keep, skip_logits, loss_kwargs, config=self.config.text_config
    )
    return LigerMuseGlimmerCausalLMOutputWithPast(
        **_extras(result),
        logits=logits,
        hidden_states=outputs.hidden_states,
        attentions=outputs.attentions,
        image_outputs=outputs.image_outputs,
        video_outputs=outputs.video_outputs,
        **{CACHE_FIELD: getattr(outputs, CACHE_FIELD, None)},
    )


__all__ = ["LigerMuseGlimmerCausalLMOutputWithPast", "lce_forward"]
