"""Outputs of the patched causal-LM forwards: Transformers' outputs plus the
extras the Liger loss can return on request (``return_token_accuracy=True``,
``return_predicted_tokens=True``); each is None unless asked for. The outputs
of the vision-language families (``Liger<Family>CausalLMOutputWithPast``) come
with those families' forwards."""

from __future__ import annotations

import importlib
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


#: output class name -> the family module that defines it with its forward
_FAMILY_OUTPUTS = {
    "LigerMuseGlimmerCausalLMOutputWithPast": "muse_glimmer",
    "LigerGemma3CausalLMOutputWithPast": "gemma3",
    "LigerGemma4CausalLMOutputWithPast": "gemma4",
    "LigerGlm4vCausalLMOutputWithPast": "glm4v",
    "LigerGlm4vMoeCausalLMOutputWithPast": "glm4v_moe",
    "LigerInternVLCausalLMOutputWithPast": "internvl",
    "LigerLlavaCausalLMOutputWithPast": "llava",
    "LigerMllamaCausalLMOutputWithPast": "mllama",
    "LigerPaliGemmaCausalLMOutputWithPast": "paligemma",
    "LigerQwen2VLCausalLMOutputWithPast": "qwen2_vl",
    "LigerQwen2_5_VLCausalLMOutputWithPast": "qwen2_5_vl",
    "LigerQwen3VLCausalLMOutputWithPast": "qwen3_vl",
    "LigerQwen3VLMoeCausalLMOutputWithPast": "qwen3_vl_moe",
    "LigerQwen3_5CausalLMOutputWithPast": "qwen3_5",
    "LigerQwen3_5MoeCausalLMOutputWithPast": "qwen3_5_moe",
    "LigerSmolVLMCausalLMOutputWithPast": "smolvlm",
}


def __getattr__(name: str) -> Any:
    # a family's output comes with its forward, whose module needs that family's Transformers classes
    family = _FAMILY_OUTPUTS.get(name)
    if family is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"liger_kernel.transformers.model.{family}"), name)
