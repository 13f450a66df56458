"""Tiny random-initialised models of every patched family, built from configs
(no downloads), and the helpers the tests share.

Models and batches are on the CPU unless ``LIGER_TEST_DEVICE`` names another
torch device type (``LIGER_TEST_DEVICE=cuda`` runs the family and forward
tests through the GPU backend on a GPU machine).
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
import transformers

from liger_kernel.dispatch import dispatcher

VOCAB = 128
DEVICE = os.environ.get("LIGER_TEST_DEVICE", "cpu")

_COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)

#: family -> (config class name, extra config arguments)
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", {}),
    "mistral": ("MistralConfig", {}),
    "mixtral": (
        "MixtralConfig",
        {"num_local_experts": 4, "num_experts_per_tok": 2, "output_router_logits": True, "router_aux_loss_coef": 0.02},
    ),
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", {"head_dim": 8}),
    "qwen3_moe": (
        "Qwen3MoeConfig",
        {
            "head_dim": 8,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "decoder_sparse_step": 2,  # layer 0 dense MLP, layer 1 experts
            "output_router_logits": True,
            "router_aux_loss_coef": 0.02,
        },
    ),
    "gemma": ("GemmaConfig", {"head_dim": 8}),
    "gemma2": ("Gemma2Config", {"head_dim": 8, "final_logit_softcapping": 5.0, "sliding_window": 8}),
    "gemma3_text": ("Gemma3TextConfig", {"head_dim": 8, "final_logit_softcapping": 5.0, "sliding_window": 8}),
    "phi3": ("Phi3Config", {"partial_rotary_factor": 0.5}),
    "granite": ("GraniteConfig", {"logits_scaling": 2.0, "embedding_multiplier": 2.0, "residual_multiplier": 0.5}),
    "olmo2": ("Olmo2Config", {}),
    "olmo3": ("Olmo3Config", {"sliding_window": 8, "layer_types": ["sliding_attention", "full_attention"]}),
    "smollm3": ("SmolLM3Config", {"no_rope_layers": [1, 0]}),  # layer 1 is a NoPE layer
    "ministral": ("MinistralConfig", {"head_dim": 8, "sliding_window": 8}),
    "exaone4": (
        "Exaone4Config",
        # the full-attention layer beside a sliding one takes no RoPE
        {"sliding_window": 8, "layer_types": ["sliding_attention", "full_attention"]},
    ),
    "hunyuan_v1_dense": ("HunYuanDenseV1Config", {"head_dim": 8}),
    "glm4": ("Glm4Config", {"head_dim": 8}),
    "falcon_h1": (
        "FalconH1Config",
        # a small Mamba-2 mixer beside attention in both layers (its torch path runs on the CPU),
        # its gated norm on, and muP multipliers away from 1, the MLP's and the head's among them
        {
            "mamba_d_ssm": 32,
            "mamba_n_heads": 4,
            "mamba_d_state": 8,
            "mamba_chunk_size": 8,
            "mamba_rms_norm": True,
            "mlp_multipliers": [0.5, 1.5],
            "lm_head_multiplier": 0.7,
            "embedding_multiplier": 1.3,
            "key_multiplier": 0.9,
            "attention_out_multiplier": 0.8,
            "ssm_out_multiplier": 0.6,
        },
    ),
}

FAMILIES = tuple(CONFIGS)


def tiny_config(family: str) -> Any:
    name, extra = CONFIGS[family]
    config = getattr(transformers, name)(**{**_COMMON, **extra})
    assert config.model_type == family
    return config


def build(family: str, seed: int = 0, device: str = DEVICE) -> Any:
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(tiny_config(family), attn_implementation="eager")
    return model.float().to(device)


def batch(seed: int = 0, rows: int = 2, seq: int = 12, device: str = DEVICE) -> dict[str, torch.Tensor]:
    """Token ids and labels, with a few ignored (-100) labels."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, VOCAB, (rows, seq), generator=generator)
    labels = input_ids.clone()
    labels[0, :3] = -100
    return {"input_ids": input_ids.to(device), "labels": labels.to(device)}


@contextlib.contextmanager
def count_op_calls() -> Iterator[collections.Counter]:
    """Count the op calls routed through the dispatcher, by op name."""
    counts: collections.Counter = collections.Counter()
    original = dispatcher.function

    def counting(op: str, device_type: str, label: str) -> Any:
        counts[op] += 1
        return original(op, device_type, label)

    dispatcher.function = counting
    try:
        yield counts
    finally:
        del dispatcher.function


WORDS = "the cat dog sat ran on mat fast slow red blue is a".split()


def word_tokenizer() -> Any:
    """A word-level tokenizer over :data:`WORDS` (ids below ``VOCAB``), built in memory."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
