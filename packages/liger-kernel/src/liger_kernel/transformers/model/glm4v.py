"""GLM-4V: the ``ForConditionalGeneration.forward`` that ``apply_liger_kernel_to_glm4v``
installs (liger-kernel 0.8.5's ``lce_forward``, under its parameters) and its output,
``LigerGlm4vCausalLMOutputWithPast``; see :mod:`liger_kernel.transformers.model.vision_language`."""

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
    "mm_token_type_ids",
    "cache_position",
    "logits_to_keep",
    "skip_logits",
)

HEAD = MultimodalHead("glm4v", "MultimodalCausalLMOutputWithPast")
LigerGlm4vCausalLMOutputWithPast = output_class(__name__, "LigerGlm4vCausalLMOutputWithPast", HEAD)
lce_forward = multimodal_forward_for(__name__, HEAD, LigerGlm4vCausalLMOutputWithPast, _PARAMETERS)

__all__ = ["LigerGlm4vCausalLMOutputWithPast", "lce_forward"]
