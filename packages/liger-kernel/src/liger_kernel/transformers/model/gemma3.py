"""Gemma 3: the ``ForConditionalGeneration.forward`` that ``apply_liger_kernel_to_gemma3``
installs (liger-kernel 0.8.5's ``multimodal_forward``, under its parameters) and its output,
``LigerGemma3CausalLMOutputWithPast``; see :mod:`liger_kernel.transformers.model.vision_language`.
0.8.5's ``causal_forward`` is the text model's (``Gemma3ForCausalLM``) shared causal-LM
forward under its parameters (:mod:`liger_kernel.transformers.model._per_family`)."""

from liger_kernel.transformers.model import paligemma
from liger_kernel.transformers.model._per_family import DENSE, lce_forward_for
from liger_kernel.transformers.model.vision_language import MultimodalHead, multimodal_forward_for, output_class

#: 0.8.5's parameters of its forward: the same as PaliGemma's
_PARAMETERS = paligemma._PARAMETERS

HEAD = MultimodalHead("gemma3", "Gemma3CausalLMOutputWithPast", labels_to_model=True)
LigerGemma3CausalLMOutputWithPast = output_class(__name__, "LigerGemma3CausalLMOutputWithPast", HEAD)
multimodal_forward = multimodal_forward_for(
    __name__, HEAD, LigerGemma3CausalLMOutputWithPast, _PARAMETERS, name="multimodal_forward", var_keyword="lm_kwargs"
)

causal_forward = lce_forward_for(__name__, DENSE, name="causal_forward", var_keyword="loss_kwargs")

__all__ = ["LigerGemma3CausalLMOutputWithPast", "causal_forward", "multimodal_forward"]
