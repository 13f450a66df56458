"""GPT-OSS: liger-kernel 0.8.5's ``lce_forward`` for ``GptOssForCausalLM``, the shared
:func:`~liger_kernel.transformers.model.causal_lm.moe_causal_lm_forward` under 0.8.5's
parameters (no ``return_dict``; see :mod:`liger_kernel.transformers.model._per_family`)."""

from liger_kernel.transformers.model._per_family import MOE_NO_RETURN_DICT, lce_forward_for

lce_forward = lce_forward_for(__name__, MOE_NO_RETURN_DICT)

__all__ = ["lce_forward"]
