"""Qwen3.5-MoE: liger-kernel 0.8.5's ``lce_forward`` for ``Qwen3_5MoeForCausalLM`` (the
text model), the shared :func:`~liger_kernel.transformers.model.causal_lm.moe_causal_lm_forward`
under 0.8.5's parameters (see :mod:`liger_kernel.transformers.model._per_family`);
``mm_token_type_ids`` reaches the decoder as a keyword when given, as the stock
forward's ``**kwargs`` do. 0.8.5's ``lce_forward_conditional_generation``, for
``Qwen3_5MoeForConditionalGeneration``, belongs to the vision-language families (issue 24)."""

from liger_kernel.transformers.model._per_family import MOE_RETURN_DICT_LAST, lce_forward_for

#: 0.8.5's order: Qwen3-MoE's, with ``mm_token_type_ids`` after ``output_router_logits``
_PARAMETERS = (
    *MOE_RETURN_DICT_LAST[: MOE_RETURN_DICT_LAST.index("output_router_logits") + 1],
    "mm_token_type_ids",
    *MOE_RETURN_DICT_LAST[MOE_RETURN_DICT_LAST.index("output_router_logits") + 1 :],
)

lce_forward = lce_forward_for(__name__, _PARAMETERS, keywords=("mm_token_type_ids",))

__all__ = ["lce_forward"]
