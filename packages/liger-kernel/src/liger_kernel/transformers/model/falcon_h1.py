"""Falcon-H1: liger-kernel 0.8.5's ``lce_forward`` for ``FalconH1ForCausalLM``, the
shared :func:`~liger_kernel.transformers.model.causal_lm.causal_lm_forward` under
0.8.5's parameters (see :mod:`liger_kernel.transformers.model._per_family`); the
shared forward applies the decoder's ``lm_head_multiplier`` as the stock head does."""

from liger_kernel.transformers.model._per_family import DENSE_RETURN_DICT_LAST, lce_forward_for

lce_forward = lce_forward_for(__name__, DENSE_RETURN_DICT_LAST)

__all__ = ["lce_forward"]
