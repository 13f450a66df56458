"""Qwen3.5: liger-kernel 0.8.5's ``lce_forward`` for ``Qwen3_5ForCausalLM`` (the text
model), the shared :func:`~liger_kernel.transformers.model.causal_lm.causal_lm_forward`
under 0.8.5's parameters (see :mod:`liger_kernel.transformers.model._per_family`).
0.8.5's ``lce_forward_for_multimodal`` (and its output ``LigerQwen3_5CausalLMOutputWithPast``),
for ``Qwen3_5ForConditionalGeneration``, is the vision-language forward of
:mod:`liger_kernel.transformers.model.vision_language` under 0.8.5's parameters."""

from liger_kernel.transformers.model._per_family import DENSE, lce_forward_for
from liger_kernel.transformers.model.vision_language import MultimodalHead, multimodal_forward_for, output_class

#: 0.8.5's order: the dense parameters without ``output_attentions``,
#: ``output_hidden_states`` and ``return_dict`` (they arrive in ``**kwargs``)
_PARAMETERS = tuple(p for p in DENSE if p not in ("output_attentions", "output_hidden_states", "return_dict"))

lce_forward = lce_forward_for(__name__, _PARAMETERS)

#: 0.8.5's parameters of ``lce_forward_for_multimodal``
_MULTIMODAL_PARAMETERS = (
    "input_ids", "attention_mask", "position_ids", "past_key_values", "inputs_embeds", "labels", "pixel_values",
    "pixel_values_videos", "image_grid_thw", "video_grid_thw", "mm_token_type_ids", "logits_to_keep", "skip_logits",
)  # fmt: skip

HEAD = MultimodalHead("qwen3_5", "MultimodalCausalLMOutputWithPast")
LigerQwen3_5CausalLMOutputWithPast = output_class(__name__, "LigerQwen3_5CausalLMOutputWithPast", HEAD)
lce_forward_for_multimodal = multimodal_forward_for(
    __name__, HEAD, LigerQwen3_5CausalLMOutputWithPast, _MULTIMODAL_PARAMETERS, name="lce_forward_for_multimodal"
)

__all__ = ["LigerQwen3_5CausalLMOutputWithPast", "lce_forward", "lce_forward_for_multimodal"]
