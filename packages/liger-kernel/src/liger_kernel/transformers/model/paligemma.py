"""PaliGemma: the ``ForConditionalGeneration.forward`` that ``apply_liger_kernel_to_paligemma``
installs (liger-kernel 0.8.5's ``lce_forward``, under its parameters) and its output,
``LigerPaliGemmaCausalLMOutputWithPast``; see :mod:`liger_kernel.transformers.model.vision_language`."""

from liger_kernel.transformers.model.vision_language import MultimodalHead, multimodal_forward_for, output_class

#: 0.8.5's parameters of ``lce_forward``
_PARAMETERS = (
    "input_ids",
    "pixel_values",
    "attention_mask",
    "position_ids",
    "past_key_values",
    "token_type_ids",
    "cache_position",
    "inputs_embeds",
    "labels",
    "use_cache",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "logits_to_keep",
    "skip_logits",
)

HEAD = MultimodalHead("paligemma", "PaliGemmaCausalLMOutputWithPast", softcap=True)
LigerPaliGemmaCausalLMOutputWithPast = output_class(__name__, "LigerPaliGemmaCausalLMOutputWithPast", HEAD)
lce_forward = multimodal_forward_for(
    __name__, HEAD, LigerPaliGemmaCausalLMOutputWithPast, _PARAMETERS, var_keyword="lm_kwargs"
)

__all__ = ["LigerPaliGemmaCausalLMOutputWithPast", "lce_forward"]
