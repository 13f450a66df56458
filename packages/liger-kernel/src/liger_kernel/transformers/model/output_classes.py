"""Outputs of the patched causal-LM forwards: Transformers' outputs plus the
extras the Liger loss can return on request (``return_token_accuracy=True``,
``return_predicted_tokens=True``); each is None unless asked for. The outputs
of the vision-language families (``Liger<Family>CausalLMOutputWithPast``) come
with those families' forwards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.modeling_outputs import CausalLMOutputWithPast, MoeCausalLMOutputWithPast


@dataclass
class LigerCausalLMOutputWithPast(CausalLMOutputWithPast):
    #: fraction of the non-ignored next-token targets that are the argmax of their logits
    token_accuracy: torch.FloatTensor | None = None
    #: argmax of each position's logits, flattened, -1 where the target is ignored
    predicted_tokens: torch.LongTensor | None = None


@dataclass
class LigerMoeCausalLMOutputWithPast(MoeCausalLMOutputWithPast):
    token_accuracy: torch.FloatTensor | None = None
    predicted_tokens: torch.LongTensor | None = None


def __getattr__(name: str) -> Any:
    # a family's output comes with its forward, whose module needs that family's Transformers classes
    if name == "LigerMuseGlimmerCausalLMOutputWithPast":
        from liger_kernel.transformers.model.muse_glimmer import LigerMuseGlimmerCausalLMOutputWithPast

        return LigerMuseGlimmerCausalLMOutputWithPast
    if name == "LigerGemma4CausalLMOutputWithPast":
        from liger_kernel.transformers.model.gemma4 import LigerGemma4CausalLMOutputWithPast

        return LigerGemma4CausalLMOutputWithPast
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
