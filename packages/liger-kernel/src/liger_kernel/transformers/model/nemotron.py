"""Nemotron: liger-kernel 0.8.5's ``lce_forward`` for ``NemotronForCausalLM``, the shared
:func:`~liger_kernel.transformers.model.causal_lm.causal_lm_forward` under 0.8.5's
parameters (see :mod:`liger_kernel.transformers.model._per_family`)."""

from liger_kernel.transformers.model._per_family import DENSE, lce_forward_for

lce_forward = lce_forward_for(__name__, DENSE)

__all__ = ["lce_forward"]
