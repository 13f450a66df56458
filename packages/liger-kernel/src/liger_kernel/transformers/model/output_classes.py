"""Outputs of the patched causal-LM forwards: Transformers' outputs plus the
extras the Liger loss can return on request (``return_token_accuracy=True``,
``return_predicted_tokens=True``); each is None unless asked for. The outputs
of the vision-language families (``Liger<Family>CausalLMOutputWithPast``) come
with those families' forwards."""

from __future__ import annotations

from dataclasses import dataclass

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
