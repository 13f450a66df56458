"""Tiny random-initialised vision-language models of every patched family,
built from configs (no downloads), and a batch of tokens with random pixels
for each: two rows of 12 tokens, the first holding one image (4 image tokens),
labels ignored over the prompt.

Each builder gives a 1-2 layer text decoder of width 32 and a 1-2 layer
vision tower of width 16 on 4 x 4 or 8 x 8 pixel images, so that the whole
parity suite runs in seconds on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import transformers
from tiny_models import CONFIGS, DEVICE, VOCAB, batch

IMAGE_TOKEN = 120
VIDEO_TOKEN = 121
VISION_START = 119
VISION_END = 118

_TEXT = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    max_position_embeddings=64,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
#: M-RoPE over the 8-wide heads: temporal, height and width sections of the 4 frequencies
_MROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]}
_MOE = dict(
    num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16, output_router_logits=True, router_aux_loss_coef=0.02
)
_QWEN_IDS = dict(
    image_token_id=IMAGE_TOKEN,
    video_token_id=VIDEO_TOKEN,
    vision_start_token_id=VISION_START,
    vision_end_token_id=VISION_END,
)
#: Qwen-style vision tower: 2 x 2 patches, one frame, a 2 x 2 merge
_QWEN_VISION = dict(depth=2, num_heads=2, in_channels=3, patch_size=2, spatial_merge_size=2, temporal_patch_size=1)


@dataclass(frozen=True)
class TinyVisionLanguage:
    """How to build one family's tiny model and its image inputs."""

    config: Callable[[], Any]
    #: the image inputs of the first row (``"grid"``: Qwen-style flattened patches and their grid;
    #: ``"image"``: one (3, H, W) image per row holding image tokens)
    pixels: str = "grid"
    image_size: int = 8
    #: image tokens in the first row
    image_tokens: int = 4
    extra: dict[str, Any] = field(default_factory=dict)
    #: the model takes ``token_type_ids`` marking the image tokens (Gemma 3, PaliGemma)
    token_type_ids: bool = False


def _qwen2_vl() -> Any:
    return transformers.Qwen2VLConfig(
        text_config={**_TEXT, "rope_parameters": _MROPE},
        vision_config={**_QWEN_VISION, "embed_dim": 16, "hidden_size": 32, "mlp_ratio": 2},
        **_QWEN_IDS,
    )


def _qwen2_5_vl() -> Any:
    return transformers.Qwen2_5_VLConfig(
        text_config={**_TEXT, "rope_parameters": _MROPE},
        vision_config={
            **_QWEN_VISION,
            "hidden_size": 16,
            "intermediate_size": 24,
            "out_hidden_size": 32,
            "window_size": 4,
            "fullatt_block_indexes": [1],
        },
        **_QWEN_IDS,
    )


def _qwen3_vl_vision() -> dict[str, Any]:
    return {
        **_QWEN_VISION,
        "hidden_size": 16,
        "intermediate_size": 24,
        "out_hidden_size": 32,
        "num_position_embeddings": 16,
    }


def _qwen3_vl() -> Any:
    return transformers.Qwen3VLConfig(
        text_config={**_TEXT, "rope_parameters": {**_MROPE, "mrope_interleaved": True}},
        vision_config={**_qwen3_vl_vision(), "deepstack_visual_indexes": [0]},
        **_QWEN_IDS,
    )


def _qwen3_vl_moe() -> Any:
    return transformers.Qwen3VLMoeConfig(
        text_config={**_TEXT, **_MOE, "rope_parameters": {**_MROPE, "mrope_interleaved": True}},
        vision_config={**_qwen3_vl_vision(), "deepstack_visual_indexes": [0]},
        **_QWEN_IDS,
    )


def _qwen3_5_text(moe: bool) -> dict[str, Any]:
    text = {
        **_TEXT,
        "partial_rotary_factor": 0.5,
        "rope_parameters": {**_MROPE, "mrope_section": [1, 1, 0], "mrope_interleaved": True},
        "layer_types": ["linear_attention", "full_attention"],
        "linear_conv_kernel_dim": 2,
        "linear_key_head_dim": 8,
        "linear_value_head_dim": 8,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 4,
    }
    if moe:
        text.update(_MOE, shared_expert_intermediate_size=48)
    return text


def _qwen3_5() -> Any:
    return transformers.Qwen3_5Config(
        text_config=_qwen3_5_text(moe=False), vision_config=_qwen3_vl_vision(), **_QWEN_IDS
    )


def _qwen3_5_moe() -> Any:
    return transformers.Qwen3_5MoeConfig(
        text_config=_qwen3_5_text(moe=True), vision_config=_qwen3_vl_vision(), **_QWEN_IDS
    )


def _glm4v_vision() -> dict[str, Any]:
    return {
        **_QWEN_VISION,
        "hidden_size": 16,
        "intermediate_size": 24,
        "out_hidden_size": 32,
        "image_size": 8,
    }


def _glm4v() -> Any:
    return transformers.Glm4vConfig(
        text_config={**_TEXT, "rope_parameters": {**_MROPE, "partial_rotary_factor": 0.5, "mrope_section": [1, 1, 0]}},
        vision_config=_glm4v_vision(),
        image_token_id=IMAGE_TOKEN,
        video_token_id=VIDEO_TOKEN,
        image_start_token_id=VISION_START,
        image_end_token_id=VISION_END,
        video_start_token_id=117,
        video_end_token_id=116,
    )


def _glm4v_moe() -> Any:
    return transformers.Glm4vMoeConfig(
        text_config={
            **_TEXT,
            "rope_parameters": {**_MROPE, "partial_rotary_factor": 0.5, "mrope_section": [1, 1, 0]},
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "n_shared_experts": 1,
            "moe_intermediate_size": 16,
            "first_k_dense_replace": 1,
            "n_group": 1,
            "topk_group": 1,
            "output_router_logits": True,
            "router_aux_loss_coef": 0.02,
        },
        vision_config=_glm4v_vision(),
        image_token_id=IMAGE_TOKEN,
        video_token_id=VIDEO_TOKEN,
        image_start_token_id=VISION_START,
        image_end_token_id=VISION_END,
        video_start_token_id=117,
        video_end_token_id=116,
    )


#: a SigLIP / CLIP tower: 2 x 2 patches of an 8 x 8 image (16 patches)
_SIGLIP = dict(
    hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2, image_size=8, patch_size=2
)


def _gemma3() -> Any:
    return transformers.Gemma3Config(
        # the multimodal head ignores final_logit_softcapping (the text-only head applies it): set, to show it
        text_config={**_TEXT, "sliding_window": 8, "final_logit_softcapping": 5.0},
        vision_config=_SIGLIP,
        mm_tokens_per_image=4,
        image_token_index=IMAGE_TOKEN,
        boi_token_index=VISION_START,
        eoi_token_index=VISION_END,
    )


def _paligemma() -> Any:
    return transformers.PaliGemmaConfig(
        text_config={**_TEXT, "model_type": "gemma2", "final_logit_softcapping": 5.0, "sliding_window": 8},
        vision_config={**_SIGLIP, "image_size": 4, "projection_dim": 32},  # 4 patches: 4 image tokens
        image_token_index=IMAGE_TOKEN,
        projection_dim=32,
    )


def _llava() -> Any:
    # 4 x 4 pixels of 2 x 2 patches: 4 image tokens (the CLS token dropped, "default" strategy)
    return transformers.LlavaConfig(
        text_config={**_TEXT, "model_type": "llama"},
        vision_config={**_SIGLIP, "model_type": "clip_vision_model", "image_size": 4, "projection_dim": 16},
        image_token_index=IMAGE_TOKEN,
        vision_feature_layer=-1,
        image_seq_length=4,
    )


def _internvl() -> Any:
    # 8 x 8 pixels of 2 x 2 patches, shuffled 2 x 2 (downsample 0.5): 4 image tokens
    return transformers.InternVLConfig(
        text_config={**_TEXT, "model_type": "qwen2"},
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 24,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": [8, 8],
            "patch_size": [2, 2],
            "norm_type": "rms_norm",
            "use_qk_norm": True,
        },
        image_token_id=IMAGE_TOKEN,
        image_seq_length=4,
        downsample_ratio=0.5,
        vision_feature_layer=-1,
    )


def _smolvlm() -> Any:
    return transformers.SmolVLMConfig(
        text_config={**_TEXT, "model_type": "llama"},
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 24,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 8,
            "patch_size": 2,
        },
        image_token_id=IMAGE_TOKEN,
        scale_factor=2,
    )


def _mllama() -> Any:
    return transformers.MllamaConfig(
        text_config={
            **_TEXT,
            "num_hidden_layers": 2,
            "cross_attention_layers": [1],
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 24,
            "num_hidden_layers": 2,
            "num_global_layers": 1,
            "attention_heads": 2,
            "image_size": 4,
            "patch_size": 2,
            "max_num_tiles": 1,
            "intermediate_layers_indices": [0],
            "vision_output_dim": 32,
            "supported_aspect_ratios": [[1, 1]],
        },
        image_token_index=IMAGE_TOKEN,
    )


def _gemma4() -> Any:
    # the text model of the gemma4_text parity test; a vision tower of 2 x 2 patches pooled 2 x 2: 16 patches of
    # an 8 x 8 image give 4 image tokens
    return transformers.Gemma4Config(
        text_config={**_TEXT, **CONFIGS["gemma4_text"][1]},
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 24,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "head_dim": 8,
            "patch_size": 2,
            "pooling_kernel_size": 2,
            "position_embedding_size": 16,
        },
        audio_config=None,
        image_token_id=IMAGE_TOKEN,
        boi_token_id=VISION_START,
        eoi_token_id=VISION_END,
        video_token_id=VIDEO_TOKEN,
        audio_token_id=117,
        boa_token_id=116,
        eoa_token_index=115,
    )


def _llama4() -> Any:
    # the text model of the llama4_text parity test; 2 x 2 patches of an 8 x 8 tile, pixel-shuffled by 0.5:
    # 4 image tokens
    return transformers.Llama4Config(
        text_config={**_TEXT, **CONFIGS["llama4_text"][1]},
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 64,  # the pixel-shuffle MLP's input: 16 wide x 4 shuffled patches
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 8,
            "patch_size": 2,
            "pixel_shuffle_ratio": 0.5,
            "projector_input_dim": 32,
            "projector_output_dim": 32,
            "vision_output_dim": 32,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        },
        image_token_index=IMAGE_TOKEN,
        boi_token_index=VISION_START,
        eoi_token_index=VISION_END,
    )


TINY: dict[str, TinyVisionLanguage] = {
    "gemma4": TinyVisionLanguage(_gemma4, pixels="gemma4"),
    "llama4": TinyVisionLanguage(_llama4, pixels="tile"),
    "qwen2_vl": TinyVisionLanguage(_qwen2_vl),
    "qwen2_5_vl": TinyVisionLanguage(_qwen2_5_vl),
    "qwen3_vl": TinyVisionLanguage(_qwen3_vl),
    "qwen3_vl_moe": TinyVisionLanguage(_qwen3_vl_moe),
    "qwen3_5": TinyVisionLanguage(_qwen3_5),
    "qwen3_5_moe": TinyVisionLanguage(_qwen3_5_moe),
    "glm4v": TinyVisionLanguage(_glm4v),
    "glm4v_moe": TinyVisionLanguage(_glm4v_moe),
    "gemma3": TinyVisionLanguage(_gemma3, pixels="image", token_type_ids=True),
    "paligemma": TinyVisionLanguage(_paligemma, pixels="image", image_size=4, token_type_ids=True),
    "llava": TinyVisionLanguage(_llava, pixels="image", image_size=4),
    "internvl": TinyVisionLanguage(_internvl, pixels="image"),
    "smolvlm": TinyVisionLanguage(_smolvlm, pixels="smolvlm"),
    "mllama": TinyVisionLanguage(_mllama, pixels="mllama", image_size=4),
}


def tiny_vision_config(family: str) -> Any:
    return TINY[family].config()


def build_vision_language(family: str, seed: int = 0, device: str = DEVICE) -> Any:
    from liger_kernel.transformers.monkey_patch import VISION_LANGUAGE

    config = tiny_vision_config(family)
    cls = getattr(transformers, f"{VISION_LANGUAGE[family].prefix}ForConditionalGeneration")
    torch.manual_seed(seed)
    model = cls._from_config(config, attn_implementation="eager")
    return model.float().to(device)


def vision_batch(family: str, seed: int = 0, device: str = DEVICE) -> dict[str, torch.Tensor]:
    """Two rows of 12 tokens with random pixels for one image in the first row."""
    spec = TINY[family]
    data = batch(seed=seed, device="cpu")
    generator = torch.Generator().manual_seed(seed + 1000)
    ids = data["input_ids"]
    ids[ids >= 110] = 5
    n = spec.image_tokens
    ids[0, 1] = VISION_START
    ids[0, 2 : 2 + n] = IMAGE_TOKEN
    ids[0, 2 + n] = VISION_END
    data["labels"] = ids.clone()
    data["labels"][0, : 3 + n] = -100
    size = spec.image_size
    if spec.pixels == "grid":
        data["pixel_values"] = torch.randn(16, 3 * 2 * 2, generator=generator)
        data["image_grid_thw"] = torch.tensor([[1, 4, 4]])
        data["mm_token_type_ids"] = (ids == IMAGE_TOKEN).long()
    elif spec.pixels == "image":
        data["pixel_values"] = torch.randn(1, 3, size, size, generator=generator)
        if spec.token_type_ids:
            data["token_type_ids"] = (ids == IMAGE_TOKEN).long()
    elif spec.pixels == "smolvlm":  # (batch, images, 3, H, W); the second row's all-zero image is padding
        data["pixel_values"] = torch.zeros(2, 1, 3, size, size)
        data["pixel_values"][0] = torch.randn(1, 3, size, size, generator=generator)
    elif spec.pixels == "gemma4":  # flattened 2 x 2 patches of an 8 x 8 image and their (x, y) positions
        data["pixel_values"] = torch.rand(1, 16, 3 * 2 * 2, generator=generator)
        grid = torch.stack(torch.meshgrid(torch.arange(4), torch.arange(4), indexing="xy"), dim=-1)
        data["image_position_ids"] = grid.reshape(1, 16, 2)
        data["mm_token_type_ids"] = (ids == IMAGE_TOKEN).long()
    elif spec.pixels == "tile":  # Llama 4: one (3, H, W) tile
        data["pixel_values"] = torch.randn(1, 3, size, size, generator=generator)
    else:  # Mllama: (batch, images, tiles, 3, H, W) and a cross-attention mask per token, image and tile
        data["pixel_values"] = torch.randn(2, 1, 1, 3, size, size, generator=generator)
        data["aspect_ratio_ids"] = torch.ones(2, 1, dtype=torch.long)
        data["aspect_ratio_mask"] = torch.ones(2, 1, 1, dtype=torch.long)
        data["cross_attention_mask"] = torch.ones(2, ids.shape[1], 1, 1, dtype=torch.long)
    data.update(spec.extra)
    return {key: value.to(device) for key, value in data.items()}
