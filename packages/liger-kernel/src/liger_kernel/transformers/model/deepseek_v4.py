"""DeepSeek-V4: liger-kernel 0.8.5's ``lce_forward`` for ``DeepseekV4ForCausalLM``, the shared
:func:`~liger_kernel.transformers.model.causal_lm.moe_causal_lm_forward` (with the router loss) under 0.8.5's
parameters, which leave ``return_dict`` and the other passed-on keywords to ``**kwargs`` (see
:mod:`liger_kernel.transformers.model._per_family`)."""

from liger_kernel.transformers.model._per_family import MOE_WITHOUT_PASSED_ON, lce_forward_for

lce_forward = lce_forward_for(__name__, MOE_WITHOUT_PASSED_ON)

__all__ = ["lce_forward"]
