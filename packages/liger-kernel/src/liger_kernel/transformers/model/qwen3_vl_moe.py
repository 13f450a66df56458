"""Qwen3-VL-MoE: the ``ForConditionalGeneration.forward`` that ``apply_liger_kernel_to_qwen3_vl_moe``
installs (liger-kernel 0.8.5's ``lce_forward``, under its parameters) and its output,
``LigerQwen3VLMoeCausalLMOutputWithPast``; see :mod:`liger_kernel.transformers.model.vision_language`."""

from liger_kernel.transformers.model import qwen3_vl
from liger_kernel.transformers.model.vision_language import MultimodalHead, multimodal_forward_for, output_class

#: 0.8.5's parameters of its forward: the same as Qwen3-VL's
_PARAMETERS = qwen3_vl._PARAMETERS

HEAD = MultimodalHead("qwen3_vl_moe", "Qwen3VLMoeCausalLMOutputWithPast", moe=True)
LigerQwen3VLMoeCausalLMOutputWithPast = output_class(__name__, "LigerQwen3VLMoeCausalLMOutputWithPast", HEAD)
lce_forward = multimodal_forward_for(__name__, HEAD, LigerQwen3VLMoeCausalLMOutputWithPast, _PARAMETERS)

__all__ = ["LigerQwen3VLMoeCausalLMOutputWithPast", "lce_forward"]
