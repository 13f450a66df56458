"""Qwen2.5-VL: the ``ForConditionalGeneration.forward`` that ``apply_liger_kernel_to_qwen2_5_vl``
installs (liger-kernel 0.8.5's ``lce_forward``, under its parameters) and its output,
``LigerQwen2_5_VLCausalLMOutputWithPast``; see :mod:`liger_kernel.transformers.model.vision_language`."""

from liger_kernel.transformers.model.vision_language import MultimodalHead, multimodal_forward_for, output_class

#: 0.8.5's parameters of ``lce_forward``
_PARAMETERS = (
    "input_ids",
    "attention_mask",
    "position_ids",
    "past_key_values",
    "inputs_embeds",
    "labels",
    "use_cache",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "pixel_values",
    "pixel_values_videos",
    "image_grid_thw",
    "video_grid_thw",
    "rope_deltas",
    "mm_token_type_ids",
    "cache_position",
    "second_per_grid_ts",
    "skip_logits",
)

HEAD = MultimodalHead("qwen2_5_vl", "MultimodalCausalLMOutputWithPast")
LigerQwen2_5_VLCausalLMOutputWithPast = output_class(__name__, "LigerQwen2_5_VLCausalLMOutputWithPast", HEAD)
lce_forward = multimodal_forward_for(__name__, HEAD, LigerQwen2_5_VLCausalLMOutputWithPast, _PARAMETERS)

__all__ = ["LigerQwen2_5_VLCausalLMOutputWithPast", "lce_forward"]
