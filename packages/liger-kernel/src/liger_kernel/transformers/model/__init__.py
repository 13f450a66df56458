"""Replacement causal-LM ``forward`` methods installed by the patch functions."""

from liger_kernel.transformers.model.causal_lm import causal_lm_forward, liger_causal_lm_loss, moe_causal_lm_forward

__all__ = ["causal_lm_forward", "liger_causal_lm_loss", "moe_causal_lm_forward"]
