"""DeepSeek-V2: liger-kernel 0.8.5's ``lce_forward`` for ``DeepseekV2ForCausalLM``. 0.8.5 gave it the dense
parameters; it is the shared
:func:`~liger_kernel.transformers.model.causal_lm.moe_causal_lm_forward` (router logits returned when asked
for, no router loss: the stock forward adds none), see :mod:`liger_kernel.transformers.model._per_family`."""

from liger_kernel.transformers.model._per_family import DENSE, lce_forward_for

lce_forward = lce_forward_for(__name__, DENSE, moe=True)

__all__ = ["lce_forward"]
