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

#: DeepSeek-V2/V3's multi-head latent attention, tiny; layer 0 dense MLP, layer 1 experts
_MLA = dict(
    num_key_value_heads=4,  # MLA expands the latent to every head
    q_lora_rank=16,
    kv_lora_rank=16,
    qk_rope_head_dim=4,
    qk_nope_head_dim=4,
    v_head_dim=8,
    head_dim=4,
    n_routed_experts=4,
    num_experts_per_tok=2,
    moe_intermediate_size=16,
    n_shared_experts=1,
    first_k_dense_replace=1,
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
    "hunyuan_v1_moe": ("HunYuanMoEV1Config", {"head_dim": 8, "num_experts": 4, "moe_topk": 2}),
    "deepseek_v2": ("DeepseekV2Config", {**_MLA}),
    "deepseek_v3": ("DeepseekV3Config", {**_MLA, "n_group": 2, "topk_group": 1}),
    "deepseek_v4": (
        "DeepseekV4Config",
        {
            "head_dim": 16,
            "qk_rope_head_dim": 4,
            "q_lora_rank": 16,
            "num_key_value_heads": 1,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 16,
            "n_shared_experts": 1,
            # a sliding layer and a compressed one (3 windows of 4 of the 12 test tokens)
            "layer_types": ["sliding_attention", "compressed_sparse_attention"],
            "compress_rates": {"compressed_sparse_attention": 4, "heavily_compressed_attention": 8},
            "sliding_window": 8,
            "mlp_layer_types": ["hash_moe", "moe"],
            "o_groups": 2,
            "o_lora_rank": 8,
            "index_n_heads": 2,
            "index_head_dim": 8,
            "index_topk": 2,
            "hc_mult": 2,
            "hc_sinkhorn_iters": 3,
            "output_router_logits": True,
            "router_aux_loss_coef": 0.02,
        },
    ),
    "qwen3_next": (
        "Qwen3NextConfig",
        {
            "head_dim": 8,
            "partial_rotary_factor": 0.5,
            # a Gated-DeltaNet layer (its torch path on the CPU) and a gated full-attention layer
            "layer_types": ["linear_attention", "full_attention"],
            "linear_conv_kernel_dim": 2,
            "linear_key_head_dim": 8,
            "linear_value_head_dim": 8,
            "linear_num_key_heads": 2,
            "linear_num_value_heads": 4,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "shared_expert_intermediate_size": 48,
            "decoder_sparse_step": 2,  # layer 0 dense MLP, layer 1 experts and the shared expert
            "output_router_logits": True,
            "router_aux_loss_coef": 0.02,
        },
    ),
    "gemma4_text": (
        "Gemma4TextConfig",
        {
            "head_dim": 8,
            "global_head_dim": 16,  # the full-attention layer's heads are wider
            "sliding_window": 8,
            "layer_types": ["sliding_attention", "full_attention"],
            "final_logit_softcapping": 5.0,
            "vocab_size_per_layer_input": VOCAB,
            "hidden_size_per_layer_input": 8,
            # the MoE block beside the MLP: its router's scale-free norm and three more norms per layer
            "enable_moe_block": True,
            "num_experts": 4,
            "top_k_experts": 2,
            "moe_intermediate_size": 16,
        },
    ),
    # rotary over half of each 8-wide head; biased MLP projections
    "nemotron": ("NemotronConfig", {"head_dim": 8, "partial_rotary_factor": 0.5, "mlp_bias": True}),
    "gpt_oss": (
        "GptOssConfig",
        {
            "head_dim": 8,
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
            "output_router_logits": True,
            "router_aux_loss_coef": 0.02,
            # attention sinks on every layer, a sliding-window layer beside a full one (both stay stock)
            "sliding_window": 8,
            "layer_types": ["sliding_attention", "full_attention"],
            # the experts' gate/up outputs of this tiny model are about 0.1 wide: a limit
            # of 0.1 puts many beyond it, so both clamps of the gate act
            "swiglu_limit": 0.1,
            # GPT-OSS's YaRN RoPE (its cos/sin carry YaRN's attention scaling), sized to 64 positions
            "rope_parameters": {
                "rope_type": "yarn",
                "factor": 32.0,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
                "truncate": False,
                "original_max_position_embeddings": 2,
                "rope_theta": 150000.0,
            },
        },
    ),
    "llama4_text": (
        "Llama4TextConfig",
        {
            "head_dim": 8,
            "intermediate_size_mlp": 48,  # the dense layer's MLP; the shared expert takes intermediate_size
            "num_local_experts": 4,
            "num_experts_per_tok": 1,  # top-1, as Llama 4
            "moe_layers": [1],  # layer 0 dense, layer 1 experts + shared expert
            "no_rope_layers": [1, 0],  # layer 0 RoPE (with q/k L2 norm, chunked attention), layer 1 NoPE
            "attention_chunk_size": 8,
        },
    ),
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
    # the text-only models (model types qwen3_5_text / qwen3_5_moe_text, which the patch functions
    # also serve): a Gated-DeltaNet layer (its torch path on the CPU) and a gated full-attention layer
    # with partial rotary; the MoE one has experts and a gated shared expert in every layer
    "qwen3_5": (
        "Qwen3_5TextConfig",
        {
            "head_dim": 8,
            "partial_rotary_factor": 0.5,
            "layer_types": ["linear_attention", "full_attention"],
            "linear_conv_kernel_dim": 2,
            "linear_key_head_dim": 8,
            "linear_value_head_dim": 8,
            "linear_num_key_heads": 2,
            "linear_num_value_heads": 4,
        },
    ),
    "qwen3_5_moe": (
        "Qwen3_5MoeTextConfig",
        {
            "head_dim": 8,
            "partial_rotary_factor": 0.5,
            "layer_types": ["linear_attention", "full_attention"],
            "linear_conv_kernel_dim": 2,
            "linear_key_head_dim": 8,
            "linear_value_head_dim": 8,
            "linear_num_key_heads": 2,
            "linear_num_value_heads": 4,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "shared_expert_intermediate_size": 48,
            "output_router_logits": True,
            "router_aux_loss_coef": 0.02,
        },
    ),
}

#: families whose tiny model is the text-only one, of that config's own model type
TEXT_MODEL_TYPES = {"qwen3_5": "qwen3_5_text", "qwen3_5_moe": "qwen3_5_moe_text"}

#: families patched by a hand-written function rather than a FAMILIES row, with
#: their own tests (test_families.py names them); the rest are table rows
HAND_WRITTEN = ("nemotron",)
FAMILIES = tuple(family for family in CONFIGS if family not in HAND_WRITTEN)

#: the SGD step of the training-parity tests where 0.5 is too large for the tiny
#: model: Gemma-4's (attention scaled by 1, its norms' weights scaling the
#: logits) amplifies float rounding ~100x per step at 0.5; its stock model with
#: rsqrt in place of pow(x, -0.5) in its RMSNorm drifts as far from itself
#: (transformers 5.25: 0.1 still left 15 of 4096 embedding-gradient entries 7e-5 apart after 3 steps)
LEARNING_RATES = {"gemma4_text": 0.02}

#: families patched by a hand-written function, with their own builders below
#: (vision-language models: no ``AutoModelForCausalLM``, image inputs)
MULTIMODAL = (
    "muse_glimmer",
    # the vision-language families of monkey_patch.VISION_LANGUAGE (builders in tiny_vision_models.py),
    # their text-only model types, and Pixtral's vision encoder
    *"qwen2_vl qwen2_vl_text qwen2_5_vl qwen2_5_vl_text qwen3_vl qwen3_vl_text qwen3_vl_moe qwen3_vl_moe_text".split(),
    *"gemma3 gemma4 paligemma llava internvl smolvlm mllama mllama_text_model glm4v glm4v_moe llama4".split(),
    "pixtral",
)

IMAGE_TOKEN = 120


def muse_glimmer_config() -> Any:
    """A MuseGlimmer with a 2-layer text decoder (a sliding RoPE layer and a
    full NoPE one) and a 2-layer vision tower (window and full attention)."""
    text = {
        **_COMMON,
        "head_dim": 8,
        "sliding_window": 8,
        "layer_types": ["sliding_attention", "full_attention"],
        "layer_rope_theta": [10000.0, 0],
        "final_logit_softcapping": 5.0,
        "output_multiplier": 0.5,
        "qk_scale_factor": 2.0,
    }
    vision = {
        "patch_size": 2,
        "pos_emb_height": 4,
        "pos_emb_width": 4,
        "max_position_embeddings": 16,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "hidden_size": 16,
        "intermediate_size": 32,
        "patch_temporal": 1,
        "merge_size": 2,
        "layer_types": ["window_attention", "full_attention"],
    }
    return transformers.MuseGlimmerConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=IMAGE_TOKEN,
        video_token_id=IMAGE_TOKEN + 1,
        out_hidden_size=16 * 2 * 2,  # the vision width after the 2 x 2 merge
        projector_hidden_size=24,
    )


def build_multimodal(family: str, seed: int = 0, device: str = DEVICE) -> Any:
    assert family == "muse_glimmer", family
    from transformers.models.muse_glimmer.modeling_muse_glimmer import MuseGlimmerForConditionalGeneration

    torch.manual_seed(seed)
    model = MuseGlimmerForConditionalGeneration._from_config(muse_glimmer_config(), attn_implementation="eager")
    return model.float().to(device)


def image_batch(seed: int = 0, device: str = DEVICE) -> dict[str, torch.Tensor]:
    """Two rows of tokens, the first holding one 4 x 4-patch image (4 image
    tokens after the 2 x 2 merge), random pixels, labels ignored over the prompt."""
    data = batch(seed=seed, device="cpu")
    generator = torch.Generator().manual_seed(seed + 1000)
    data["input_ids"][data["input_ids"] >= IMAGE_TOKEN] = 5
    data["input_ids"][0, 2:6] = IMAGE_TOKEN
    data["labels"] = data["input_ids"].clone()
    data["labels"][0, :6] = -100
    data["pixel_values"] = torch.randn(16, 3 * 2 * 2, generator=generator)
    data["image_grid_thw"] = torch.tensor([[1, 4, 4]])
    return {key: value.to(device) for key, value in data.items()}


def tiny_config(family: str) -> Any:
    name, extra = CONFIGS[family]
    config = getattr(transformers, name)(**{**_COMMON, **extra})
    assert config.model_type == TEXT_MODEL_TYPES.get(family, family)
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
