"""Llama 4 (text): liger-kernel 0.8.5's ``lce_forward`` for ``Llama4ForCausalLM``, the shared
:func:`~liger_kernel.transformers.model.causal_lm.routed_causal_lm_forward` (the dense loss,
router logits passed on) under 0.8.5's parameters (see
:mod:`liger_kernel.transformers.model._per_family`)."""

from liger_kernel.transformers.model._per_family import DENSE, lce_forward_for
from liger_kernel.transformers.model.causal_lm import routed_causal_lm_forward

lce_forward = lce_forward_for(__name__, DENSE, forward=routed_causal_lm_forward)

__all__ = ["lce_forward"]
