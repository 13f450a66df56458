"""GLM-4V-MoE: the ``ForConditionalGeneration.forward`` that ``apply_liger_kernel_to_glm4v_moe``
installs (liger-kernel 0.8.5's ``lce_forward``, under its parameters) and its output,
``LigerGlm4vMoeCausalLMOutputWithPast``; see :mod:`liger_kernel.transformers.model.vision_language`."""

from liger_kernel.transformers.model.vision_language import MultimodalHead, multimodal_forward_for, output_class

#: 0.8.5's parameters of ``lce_forward``
_PARAMETERS = (
    "input_ids",
    "attention_mask",
    "position_ids",
    "past_key_values",
    "inputs_embeds",
    "labels",
    "pixel_values",
    "pixel_values_videos",
    "image_grid_thw",
    "video_grid_thw",
    "rope_deltas",
    "mm_token_type_ids",
    "cache_position",
    "logits_to_keep",
    "skip_logits",
    "return_dict",
)

HEAD = MultimodalHead("glm4v_moe", "MultimodalMoeCausalLMOutputWithPast", moe=True)
LigerGlm4vMoeCausalLMOutputWithPast = output_class(__name__, "LigerGlm4vMoeCausalLMOutputWithPast", HEAD)
lce_forward = multimodal_forward_for(__name__, HEAD, LigerGlm4vMoeCausalLMOutputWithPast, _PARAMETERS)

__all__ = ["LigerGlm4vMoeCausalLMOutputWithPast", "lce_forward"]
