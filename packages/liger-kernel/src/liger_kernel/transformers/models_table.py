"""The supported-models table: for each model type, what its patch function
replaces with Liger ops and what it leaves stock, and why.

:data:`ROWS` holds the two texts of every model type that
:data:`~liger_kernel.transformers.monkey_patch.MODEL_TYPE_TO_APPLY_LIGER_FN`
registers (a :data:`~liger_kernel.transformers.monkey_patch.FAMILIES` row or a
hand-written ``@patch_function``); the model types, their order and the patch
function names come from that registry, so a family added there without a row
here shows up as undescribed (and fails the test that guards the README).
``python -m liger_kernel.transformers.models_table --markdown`` (or
``liger-kernel models --markdown``) prints the README's table; without
``--markdown`` it lists the families one per line.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelRow:
    """What one model type's patch function does, in the README's words."""

    #: the pieces the patch function replaces by default (or names the switch that turns one on)
    patched: str
    #: what stays stock and why (empty: nothing a Liger op computes is left)
    stock: str = ""
    #: shown after the model type where the family is not a plain decoder
    kind: str = ""


_DECODER = "RoPE, RMSNorm, SwiGLU, loss"
#: the vision tower's 2-D rotary embedding, by the vision_rope op, under the `rope` switch
_VISION_ROPE = "2-D RoPE (`vision_rope`)"
_VL = "vision-language"
#: a family whose language model is built from `text_config` and patched by that model type's function
_FROM_TEXT_CONFIG = "language model: its own family's patch (by `text_config.model_type`)"
_QK_NORMS = "RoPE, RMSNorm (per-head q/k norms too), SwiGLU, loss"
_POST_NORMS = "RoPE, RMSNorm (post-norms, full-width q/k norms), SwiGLU, loss"

#: model_type -> its row; the table's order is the registry's, not this one's
ROWS: dict[str, ModelRow] = {
    "llama": ModelRow(_DECODER),
    "mistral": ModelRow(_DECODER),
    "ministral": ModelRow(_DECODER),
    "qwen2": ModelRow(_DECODER),
    "smollm3": ModelRow(_DECODER, "its NoPE layers (`no_rope_layers`) take no RoPE, as stock"),
    "qwen3": ModelRow(_QK_NORMS),
    "hunyuan_v1_dense": ModelRow(_QK_NORMS),
    "mixtral": ModelRow(
        "RoPE, RMSNorm, the experts (`fused_moe`: grouped GEMMs with the SwiGLU fused), loss with the router loss"
    ),
    "qwen3_moe": ModelRow(
        "RoPE, RMSNorm, SwiGLU (the dense layers), the experts (`fused_moe`), loss with the router loss"
    ),
    "gemma": ModelRow('RoPE, RMSNorm (offset 1, "gemma" casting), GEGLU, loss'),
    "gemma2": ModelRow('RoPE, RMSNorm (offset 1, "gemma" casting), GEGLU, loss (softcapped)'),
    "gemma3_text": ModelRow(
        'RoPE, RMSNorm (offset 1, "gemma" casting; q/k norms too), GEGLU, loss (softcapped where the config sets '
        "`final_logit_softcapping`)"
    ),
    "phi3": ModelRow("RoPE (partial rotary), RMSNorm, fused gate_up SwiGLU, loss"),
    "granite": ModelRow(
        "RoPE, RMSNorm, SwiGLU, cross-entropy (the fused loss with `fused_linear_cross_entropy=True`, divided by "
        "`logits_scaling` as the stock head does)"
    ),
    "olmo2": ModelRow(_POST_NORMS),
    "olmo3": ModelRow(_POST_NORMS),
    "exaone4": ModelRow(
        "RoPE, RMSNorm (post-norms, per-head q/k norms), SwiGLU, loss",
        "its full-attention layers (beside sliding-window ones) take no RoPE, as stock",
    ),
    "glm4": ModelRow(
        "RMSNorm (four per layer), fused gate_up SwiGLU, loss",
        "RoPE: GLM-4 rotates interleaved pairs, not the halves the Liger op rotates (`rope` defaults to False, "
        "as in 0.8.5)",
    ),
    "hunyuan_v1_moe": ModelRow(
        "RoPE, RMSNorm (per-head q/k norms too), SwiGLU (the shared MLP), the experts (`fused_moe`), loss",
        "the router; no router loss, as stock",
    ),
    "deepseek_v2": ModelRow(
        "RMSNorm (the attention's latent norms too), SwiGLU (dense and shared-experts MLPs), the experts (`fused_moe`), loss",
        "RoPE: MLA rotates interleaved pairs (`rope` defaults to False, as in 0.8.5); the routers; no router loss, "
        "as stock",
    ),
    "deepseek_v3": ModelRow(
        "RMSNorm (the attention's latent norms too), SwiGLU (dense and shared-experts MLPs), the experts (`fused_moe`), loss",
        "RoPE: MLA rotates interleaved pairs (`rope` defaults to False, as in 0.8.5); the routers; no router loss, "
        "as stock",
    ),
    "deepseek_v4": ModelRow(
        'RMSNorm ("gemma" casting, fp32 weights), loss with the router loss',
        "RoPE (interleaved pairs; `rope` defaults to False); the routed and shared experts, whose gate and up are "
        "clamped by `swiglu_limit` (`swiglu` defaults to False, as in 0.8.5); the weightless norms, "
        "hyper-connections, KV compressors and indexer, attention sinks, routers",
    ),
    "qwen3_5": ModelRow(
        'text decoder: RMSNorm (offset 1, "gemma" casting; layer, per-head q/k and final norms), SwiGLU (the dense '
        "MLPs); RoPE (partial rotary on the cos/sin its M-RoPE embedding composes) on request; vision tower: "
        "LayerNorm, " + _VISION_ROPE + " on request; loss (fused, on `Qwen3_5ForConditionalGeneration` and "
        "`Qwen3_5ForCausalLM`)",
        "`rope` defaults to False, as in 0.8.5; the Gated-DeltaNet layers' gated norm and linear attention; "
        "the vision tower's GELU MLP",
        "vision-language",
    ),
    "qwen3_5_text": ModelRow(
        "as `qwen3_5` (its text-only `Qwen3_5ForCausalLM`)", "as `qwen3_5` (`rope` defaults to False, as in 0.8.5)"
    ),
    "qwen3_5_moe": ModelRow(
        'text decoder: RMSNorm (offset 1, "gemma" casting; layer, per-head q/k and final norms), SwiGLU (the shared '
        "experts), the experts (`fused_moe`); RoPE (partial rotary, as `qwen3_5`) on request; vision tower: "
        "LayerNorm, " + _VISION_ROPE + " on request; loss with the router loss",
        "`rope` defaults to False, as in 0.8.5; the Gated-DeltaNet layers' gated norm and linear attention; the "
        "router and the shared expert's sigmoid gate; the vision tower's GELU MLP",
        "vision-language",
    ),
    "qwen3_5_moe_text": ModelRow(
        "as `qwen3_5_moe` (its text-only `Qwen3_5MoeForCausalLM`)",
        "as `qwen3_5_moe` (`rope` defaults to False, as in 0.8.5)",
    ),
    "qwen3_next": ModelRow(
        'RMSNorm (offset 1, "gemma" casting; layer, per-head q/k and final norms), SwiGLU (dense MLPs, shared '
        "experts), the experts (`fused_moe`), loss with the router loss; RoPE (partial rotary) on request",
        "`rope` defaults to False, as in 0.8.5; the Gated-DeltaNet layers' gated norm (`norm(x) * silu(gate)`, "
        "not the RMSNorm op) and their linear attention",
    ),
    "muse_glimmer": ModelRow(
        "text decoder: RoPE, RMSNorm (offset-1 layer norms; weight-free q/k, embedding and image-feature norms), "
        "SwiGLU, loss (output multiplier and softcap); vision tower: LayerNorm",
        "the vision tower's 2-D rotary embedding (its own layout and fp32 casts) and GELU MLP, the adapter (no "
        "Liger op computes them)",
        kind="vision-language",
    ),
    "gemma4_text": ModelRow(
        'RMSNorm (weight-scaled, offset 0, "gemma" casting; the scale-free value and router norms too), GEGLU, '
        "loss (softcapped; the output keeps `shared_kv_states` and `router_logits`)",
        "RoPE: Gemma-4 rotates q and k in separate one-tensor calls, which the Liger RoPE op's (q, k) form does "
        "not take (`rope` defaults to False, as in 0.8.5); the MoE block's experts (a GELU gate)",
    ),
    "nemotron": ModelRow(
        "RoPE (partial rotary), LayerNorm1P (the LayerNorm op with scale `weight + 1`), squared-ReLU MLP "
        "activation, loss",
        "an MLP activation other than `relu2`; the patch function takes `rope` and `layer_norm` switches where "
        "0.8.5 took `**kwargs`",
    ),
    "gpt_oss": ModelRow(
        'RoPE (half-width cos/sin), RMSNorm ("gemma" casting), loss with the router loss; with `swiglu=True` the '
        "experts' clamped SwiGLU gate (`clamped_swiglu` op; `swiglu` defaults to False, as in 0.8.5)",
        "the experts' GEMMs and the router; attention with its sinks and sliding-window layers",
    ),
    "llama4_text": ModelRow(
        "complex-form RoPE (the `llama4_rope` op), RMSNorm and the q/k L2 norm (an RMSNorm without weight), "
        "SwiGLU (dense layers and the shared expert), loss (no router loss, as stock)",
        "the routed experts (`Llama4TextExperts`: batched matmuls, no gate function to replace) and the router",
    ),
    "qwen2_vl": ModelRow(
        "text decoder: RoPE (on its composed M-RoPE cos/sin), RMSNorm, SwiGLU; vision tower: LayerNorm, "
        + _VISION_ROPE
        + "; loss",
        "the vision tower's QuickGELU MLP (no Liger op computes it)",
        _VL,
    ),
    "qwen2_vl_text": ModelRow("as `qwen2_vl` (its text model)", "as `qwen2_vl`"),
    "qwen2_5_vl": ModelRow(
        "text decoder: RoPE, RMSNorm, SwiGLU; vision tower: RMSNorm, SwiGLU (biased projections), "
        + _VISION_ROPE
        + "; loss",
        "the patch merger's GELU MLP",
        _VL,
    ),
    "qwen2_5_vl_text": ModelRow("as `qwen2_5_vl` (its text model)", "as `qwen2_5_vl`"),
    "qwen3_vl": ModelRow(
        "text decoder: RoPE (on its composed interleaved M-RoPE cos/sin), RMSNorm (q/k norms too), SwiGLU with "
        "`swiglu=True`; vision tower: LayerNorm (`layer_norm`), " + _VISION_ROPE + "; loss",
        "`swiglu` defaults to False, as in 0.8.5; the vision tower's GELU MLPs",
        _VL,
    ),
    "qwen3_vl_text": ModelRow(
        "as `qwen3_vl` (its text model)", "as `qwen3_vl` (`swiglu` defaults to False, as in 0.8.5)"
    ),
    "qwen3_vl_moe": ModelRow(
        "text decoder: RoPE, RMSNorm (q/k norms too), SwiGLU (dense MLPs), the experts (`fused_moe`); vision "
        "tower: LayerNorm, " + _VISION_ROPE + "; loss with the router loss",
        "the router; the vision tower's GELU MLPs",
        _VL,
    ),
    "qwen3_vl_moe_text": ModelRow("as `qwen3_vl_moe` (its text model)", "as `qwen3_vl_moe`"),
    "gemma3": ModelRow(
        "text decoder: as `gemma3_text`; the projector's RMSNorm; vision tower (SigLIP): LayerNorm; loss (not "
        "softcapped, as the stock multimodal head)",
        "the vision tower's GELU MLP",
        _VL,
    ),
    "gemma4": ModelRow(
        "text decoder: as `gemma4_text`; the vision and audio towers' RMSNorms; loss (softcapped); LayerNorm with "
        "`layer_norm=True`",
        "RoPE (text and the multi-dimensional vision one; `rope` defaults to False, as in 0.8.5); the vision MLP "
        "and the audio blocks; `layer_norm` defaults to False, as in 0.8.5",
        _VL,
    ),
    "paligemma": ModelRow(
        _FROM_TEXT_CONFIG + "; vision tower (SigLIP): LayerNorm; loss (softcapped where the text config says)",
        "the vision tower's GELU MLP",
        _VL,
    ),
    "llava": ModelRow(
        _FROM_TEXT_CONFIG + "; vision tower: LayerNorm (CLIP, SigLIP) or its own patch (Pixtral); loss",
        "the vision tower's GELU MLP; the switches are explicit keywords where 0.8.5 took `**kwargs`",
        _VL,
    ),
    "internvl": ModelRow(
        _FROM_TEXT_CONFIG + "; vision tower: RMSNorm, LayerNorm (the projector's too); loss",
        "the vision tower's GELU MLP; the switches are explicit keywords where 0.8.5 took `**kwargs`",
        _VL,
    ),
    "smolvlm": ModelRow(
        _FROM_TEXT_CONFIG + "; vision tower: LayerNorm; loss",
        "the vision tower's GELU MLP and the connector; the switches are explicit keywords where 0.8.5 took `**kwargs`",
        _VL,
    ),
    "mllama": ModelRow(
        "text decoder (self- and cross-attention layers): RoPE, RMSNorm (cross-attention q/k norms too), SwiGLU; "
        "vision tower: LayerNorm; loss (`MllamaForConditionalGeneration` and `MllamaForCausalLM`)",
        "the vision tower's GELU MLP and gated positional embeddings",
        _VL,
    ),
    "mllama_text_model": ModelRow("as `mllama` (its text model, `MllamaForCausalLM`)", "as `mllama`"),
    "glm4v": ModelRow(
        "text decoder: RMSNorm (four per layer), fused gate_up SwiGLU; vision tower: RMSNorm, SwiGLU, "
        + _VISION_ROPE
        + " with `rope=True`; loss",
        "the text RoPE: GLM rotates interleaved pairs (`rope` defaults to False, as in 0.8.5); the patch merger",
        _VL,
    ),
    "glm4v_moe": ModelRow(
        "text decoder: RMSNorm, SwiGLU (dense and shared-expert MLPs), the experts (`fused_moe`); vision tower: "
        "RMSNorm, SwiGLU, " + _VISION_ROPE + " with `rope=True`; loss with the router loss",
        "the text RoPE (interleaved pairs; `rope` defaults to False, as in 0.8.5); the router; the patch merger",
        _VL,
    ),
    "llama4": ModelRow(
        "text model: as `llama4_text`; vision tower: LayerNorm, complex-form 2-D RoPE (`llama4_vision_rope`); "
        "loss (fused on the multimodal head)",
        "the routed experts and the router; the vision tower's GELU MLPs and pixel-shuffle MLP",
        _VL,
    ),
    "pixtral": ModelRow(
        "RMSNorm; the MLPs where `hidden_act` is SiLU (SwiGLU)",
        "a GELU MLP (Pixtral's default); its 2-D rotary embedding (the vision RoPE op is not wired in yet)",
        "vision encoder",
    ),
    "falcon_h1": ModelRow(
        "RoPE, RMSNorm, SwiGLU with `mlp_multipliers`, loss (with `lm_head_multiplier`)",
        "the Mamba-2 mixer and its gated RMSNorm (no Liger op computes them); the muP multipliers the decoder "
        "applies itself",
        kind="hybrid",
    ),
}

#: what a registered model type without a row shows, until someone writes one
UNDESCRIBED = ModelRow("(no row in liger_kernel/transformers/models_table.py)", "(undescribed)")


def families() -> list[tuple[str, str, ModelRow]]:
    """``(model_type, patch function name, row)`` for every registered model
    type, in registration order (the family table's, then the hand-written
    functions')."""
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    return [
        (model_type, function.__name__, ROWS.get(model_type, UNDESCRIBED))
        for model_type, function in MODEL_TYPE_TO_APPLY_LIGER_FN.items()
    ]


def markdown() -> str:
    """The README's "Supported models" table."""
    lines = ["| model type | patch function | patched | left stock, and why |", "|---|---|---|---|"]
    for model_type, function, row in families():
        kind = f" ({row.kind})" if row.kind else ""
        lines.append(f"| `{model_type}`{kind} | `{function}` | {row.patched} | {row.stock} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="liger-kernel models", description="the model types liger_kernel.transformers patches"
    )
    parser.add_argument("--markdown", action="store_true", help="print the README's supported-models table")
    options = parser.parse_args(argv)
    if options.markdown:
        sys.stdout.write(markdown())
        return 0
    for model_type, function, row in families():
        kind = f" ({row.kind})" if row.kind else ""
        print(f"{model_type}{kind}: {function}")
        print(f"    patched: {row.patched}")
        if row.stock:
            print(f"    stock:   {row.stock}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
