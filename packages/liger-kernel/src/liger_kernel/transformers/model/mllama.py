"""Mllama: the ``ForConditionalGeneration.forward`` that ``apply_liger_kernel_to_mllama``
installs (liger-kernel 0.8.5's ``lce_forward``, under its parameters) and its output,
``LigerMllamaCausalLMOutputWithPast``; see :mod:`liger_kernel.transformers.model.vision_language`."""

from liger_kernel.transformers.model.vision_language import MultimodalHead, multimodal_forward_for, output_class

#: 0.8.5's parameters of ``lce_forward``
_PARAMETERS = (
    "input_ids",
    "attention_mask",
    "position_ids",
    "cross_attention_states",
    "cross_attention_mask",
    "full_text_row_masked_out_mask",
    "past_key_values",
    "inputs_embeds",
    "labels",
    "use_cache",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "cache_position",
    "logits_to_keep",
    "skip_logits",
)

HEAD = MultimodalHead("mllama", "MultimodalCausalLMOutputWithPast")
LigerMllamaCausalLMOutputWithPast = output_class(__name__, "LigerMllamaCausalLMOutputWithPast", HEAD)
lce_forward = multimodal_forward_for(__name__, HEAD, LigerMllamaCausalLMOutputWithPast, _PARAMETERS)

__all__ = ["LigerMllamaCausalLMOutputWithPast", "lce_forward"]
