"""SmolVLM: the ``ForConditionalGeneration.forward`` that ``apply_liger_kernel_to_smolvlm``
installs (liger-kernel 0.8.5's ``lce_forward``, under its parameters) and its output,
``LigerSmolVLMCausalLMOutputWithPast``; see :mod:`liger_kernel.transformers.model.vision_language`."""

from liger_kernel.transformers.model.vision_language import MultimodalHead, multimodal_forward_for, output_class

#: 0.8.5's parameters of ``lce_forward``
_PARAMETERS = (
    "input_ids",
    "attention_mask",
    "position_ids",
    "past_key_values",
    "inputs_embeds",
    "pixel_values",
    "pixel_attention_mask",
    "image_hidden_states",
    "labels",
    "use_cache",
    "output_attentions",
    "output_hidden_states",
    "cache_position",
    "return_dict",
    "logits_to_keep",
    "skip_logits",
)

HEAD = MultimodalHead("smolvlm", "SmolVLMCausalLMOutputWithPast")
LigerSmolVLMCausalLMOutputWithPast = output_class(__name__, "LigerSmolVLMCausalLMOutputWithPast", HEAD)
lce_forward = multimodal_forward_for(
    __name__, HEAD, LigerSmolVLMCausalLMOutputWithPast, _PARAMETERS, var_keyword="lm_kwargs"
)

__all__ = ["LigerSmolVLMCausalLMOutputWithPast", "lce_forward"]
