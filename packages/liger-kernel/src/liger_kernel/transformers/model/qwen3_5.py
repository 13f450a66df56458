"""Qwen3.5: liger-kernel 0.8.5's ``lce_forward`` for ``Qwen3_5ForCausalLM`` (the text
model), the shared :func:`~liger_kernel.transformers.model.causal_lm.causal_lm_forward`
under 0.8.5's parameters (see :mod:`liger_kernel.transformers.model._per_family`).
0.8.5's ``lce_forward_for_multimodal`` and ``LigerQwen3_5CausalLMOutputWithPast``, for
``Qwen3_5ForConditionalGeneration``, belong to the vision-language families (issue 24)."""

from liger_kernel.transformers.model._per_family import DENSE, lce_forward_for

#: 0.8.5's order: the dense parameters without ``output_attentions``,
#: ``output_hidden_states`` and ``return_dict`` (they arrive in ``**kwargs``)
_PARAMETERS = tuple(p for p in DENSE if p not in ("output_attentions", "output_hidden_states", "return_dict"))

lce_forward = lce_forward_for(__name__, _PARAMETERS)

__all__ = ["lce_forward"]
