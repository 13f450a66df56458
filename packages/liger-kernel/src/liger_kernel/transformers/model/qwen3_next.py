"""Qwen3-Next: liger-kernel 0.8.5's ``lce_forward`` for ``Qwen3NextForCausalLM``, the shared
:func:`~liger_kernel.transformers.model.causal_lm.moe_causal_lm_forward` under 0.8.5's
parameters (see :mod:`liger_kernel.transformers.model._per_family`)."""

from liger_kernel.transformers.model._per_family import MOE_RETURN_DICT_LAST, lce_forward_for

lce_forward = lce_forward_for(__name__, MOE_RETURN_DICT_LAST)

__all__ = ["lce_forward"]
