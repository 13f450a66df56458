"""Replacement causal-LM ``forward`` methods installed by the patch functions."""

from liger_kernel.transformers.model.causal_lm import (
    causal_lm_forward,
    liger_causal_lm_loss,
    moe_causal_lm_forward,
    routed_causal_lm_forward,
)
from liger_kernel.transformers.model.output_classes import LigerCausalLMOutputWithPast, LigerMoeCausalLMOutputWithPast

__all__ = [
    "LigerCausalLMOutputWithPast",
    "LigerMoeCausalLMOutputWithPast",
    "causal_lm_forward",
    "liger_causal_lm_loss",
    "moe_causal_lm_forward",
    "routed_causal_lm_forward",
]
