"""Qwen3.5-MoE: liger-kernel 0.8.5's ``lce_forward`` for ``Qwen3_5MoeForCausalLM`` (the
text model), the shared :func:`~liger_kernel.transformers.model.causal_lm.moe_causal_lm_forward`
under 0.8.5's parameters (see :mod:`liger_kernel.transformers.model._per_family`);
``mm_token_type_ids`` reaches the decoder as a keyword when given, as the stock
forward's ``**kwargs`` do. 0.8.5's ``lce_forward_conditional_generation`` (output
``LigerQwen3_5MoeCausalLMOutputWithPast``), for ``Qwen3_5MoeForConditionalGeneration``,
is the vision-language forward of :mod:`liger_kernel.transformers.model.vision_language`
(with the router loss) under 0.8.5's parameters."""

from liger_kernel.transformers.model._per_family import MOE_RETURN_DICT_LAST, lce_forward_for
from liger_kernel.transformers.model.vision_language import MultimodalHead, multimodal_forward_for, output_class

#: 0.8.5's order: Qwen3-MoE's, with ``mm_token_type_ids`` after ``output_router_logits``
_PARAMETERS = (
    *MOE_RETURN_DICT_LAST[: MOE_RETURN_DICT_LAST.index("output_router_logits") + 1],
    "mm_token_type_ids",
    *MOE_RETURN_DICT_LAST[MOE_RETURN_DICT_LAST.index("output_router_logits") + 1 :],
)

lce_forward = lce_forward_for(__name__, _PARAMETERS, keywords=("mm_token_type_ids",))

#: 0.8.5's parameters of ``lce_forward_conditional_generation``
_MULTIMODAL_PARAMETERS = (
    "input_ids", "attention_mask", "position_ids", "past_key_values", "inputs_embeds", "labels", "pixel_values",
    "pixel_values_videos", "image_grid_thw", "video_grid_thw", "mm_token_type_ids", "logits_to_keep", "skip_logits",
)  # fmt: skip

HEAD = MultimodalHead("qwen3_5_moe", "Qwen3_5MoeCausalLMOutputWithPast", moe=True)
LigerQwen3_5MoeCausalLMOutputWithPast = output_class(__name__, "LigerQwen3_5MoeCausalLMOutputWithPast", HEAD)
lce_forward_conditional_generation = multimodal_forward_for(
    __name__,
    HEAD,
    LigerQwen3_5MoeCausalLMOutputWithPast,
    _MULTIMODAL_PARAMETERS,
    name="lce_forward_conditional_generation",
)

__all__ = ["LigerQwen3_5MoeCausalLMOutputWithPast", "lce_forward", "lce_forward_conditional_generation"]
