"""InternVL: the ``ForConditionalGeneration.forward`` that ``apply_liger_kernel_to_internvl``
installs (liger-kernel 0.8.5's ``lce_forward``, under its parameters) and its output,
``LigerInternVLCausalLMOutputWithPast``; see :mod:`liger_kernel.transformers.model.vision_language`."""

from liger_kernel.transformers.model import llava
from liger_kernel.transformers.model.vision_language import MultimodalHead, multimodal_forward_for, output_class

#: 0.8.5's parameters of its forward: the same as LLaVA's
_PARAMETERS = llava._PARAMETERS

HEAD = MultimodalHead("internvl", "InternVLCausalLMOutputWithPast")
LigerInternVLCausalLMOutputWithPast = output_class(__name__, "LigerInternVLCausalLMOutputWithPast", HEAD)
lce_forward = multimodal_forward_for(
    __name__, HEAD, LigerInternVLCausalLMOutputWithPast, _PARAMETERS, var_keyword="lm_kwargs"
)

__all__ = ["LigerInternVLCausalLMOutputWithPast", "lce_forward"]
