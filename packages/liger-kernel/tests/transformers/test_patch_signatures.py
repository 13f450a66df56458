"""The patch functions' public shape, as frameworks read it.

Transformers' Trainer, TRL and ``AutoLigerKernelForCausalLM`` pass on only the
keyword arguments ``inspect.signature`` shows, so each function's parameters,
defaults, annotations and docstring are API. ``EXPECTED`` was recorded from the
hand-written functions these replaced (parameters and defaults as in
liger-kernel 0.8.5); a change here is a change users see.
"""

from __future__ import annotations

import inspect

import pytest

import liger_kernel.transformers as liger_transformers
from liger_kernel.transformers import monkey_patch

_SWIGLU = (
    "(rope: 'bool' = True, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
    "rms_norm: 'bool' = True, swiglu: 'bool' = True, model: 'nn.Module | None' = None) -> 'None'"
)
_GEGLU = _SWIGLU.replace("swiglu", "geglu")
_PLAIN_CE = _SWIGLU.replace("cross_entropy: 'bool' = False", "cross_entropy: 'bool' = True").replace(
    "fused_linear_cross_entropy: 'bool' = True", "fused_linear_cross_entropy: 'bool' = False"
)

#: function name -> (signature, docstring)
EXPECTED: dict[str, tuple[str, str]] = {
    "apply_liger_kernel_to_llama": (
        _SWIGLU,
        "Patch Llama: RoPE, RMSNorm, SwiGLU MLP and the fused linear cross-entropy\n"
        "    loss (or the plain cross-entropy loss). With ``model=``, also convert that\n"
        "    model's existing modules in place.",
    ),
    "apply_liger_kernel_to_mistral": (_SWIGLU, "Patch Mistral (as :func:`apply_liger_kernel_to_llama`)."),
    "apply_liger_kernel_to_mixtral": (
        _SWIGLU,
        "Patch Mixtral. ``swiglu`` covers the experts: their forward becomes the\n"
        "    fused MoE op (grouped products with the SwiGLU fused, whatever\n"
        "    ``experts_implementation`` the config names); the fused loss keeps the\n"
        "    router load-balancing loss.",
    ),
    "apply_liger_kernel_to_qwen2": (_SWIGLU, "Patch Qwen2 (as :func:`apply_liger_kernel_to_llama`)."),
    "apply_liger_kernel_to_qwen3": (_SWIGLU, "Patch Qwen3; ``rms_norm`` includes the per-head q/k norms."),
    "apply_liger_kernel_to_qwen3_moe": (
        _SWIGLU,
        "Patch Qwen3-MoE: dense MLP layers and the experts (see Mixtral).",
    ),
    "apply_liger_kernel_to_gemma": (_GEGLU, 'Patch Gemma: RMSNorm with offset 1 and "gemma" casting, GEGLU MLP.'),
    "apply_liger_kernel_to_gemma2": (_GEGLU, "Patch Gemma-2; the fused loss applies ``final_logit_softcapping``."),
    "apply_liger_kernel_to_gemma3_text": (
        _GEGLU,
        "Patch the Gemma-3 text model (``Gemma3ForCausalLM``), q/k norms included.",
    ),
    "apply_liger_kernel_to_phi3": (_SWIGLU, "Patch Phi-3: fused gate_up SwiGLU MLP; RoPE handles partial rotary."),
    "apply_liger_kernel_to_granite": (
        _PLAIN_CE,
        "Patch Granite. Cross-entropy by default; the fused loss, if chosen,\n"
        "    divides by ``logits_scaling`` as the stock head does.",
    ),
    "apply_liger_kernel_to_olmo2": (_SWIGLU, 'Patch OLMo-2: post-norms and full-width q/k norms (casting "gemma").'),
    "apply_liger_kernel_to_olmo3": (
        _SWIGLU,
        'Patch OLMo-3: as OLMo-2 (post-norms, full-width q/k norms, casting\n    "gemma"); its fp32 cos/sin and '
        "per-layer-type RoPE tables go to the RoPE\n    op as they are.",
    ),
    "apply_liger_kernel_to_smollm3": (
        _SWIGLU,
        "Patch SmolLM3 (as Llama); its NoPE layers (``no_rope_layers``) skip the\n    RoPE call, patched or not.",
    ),
    "apply_liger_kernel_to_ministral": (_SWIGLU, "Patch Ministral (as Mistral)."),
    "apply_liger_kernel_to_exaone4": (
        _SWIGLU,
        "Patch EXAONE-4: post-norms and per-head q/k norms (Llama math, not in\n    place); its full-attention "
        "layers beside sliding ones skip RoPE as stock.",
    ),
    "apply_liger_kernel_to_hunyuan_v1_dense": (
        _SWIGLU,
        "Patch Hunyuan-V1 dense; ``rms_norm`` includes the per-head query/key norms\n    (applied after RoPE).",
    ),
    # 0.8.5's GLM-4 function, too, defaults to rope=False
    "apply_liger_kernel_to_glm4": (
        _SWIGLU.replace("rope: 'bool' = True", "rope: 'bool' = False"),
        "Patch GLM-4: its four norms per layer (post-norms: Llama math, not in\n"
        "    place), the fused gate_up SwiGLU MLP (:class:`LigerPhi3SwiGLUMLP`) and the\n"
        "    loss. RoPE stays stock: GLM-4 rotates interleaved pairs of a partial\n"
        "    rotary width, which the Liger RoPE op (rotate-half) does not compute, so\n"
        "    ``rope`` defaults to False and ``rope=True`` is ignored with a warning.",
    ),
    "apply_liger_kernel_to_hunyuan_v1_moe": (
        _SWIGLU,
        "Patch Hunyuan-V1 MoE: RoPE, RMSNorm (the per-head query/key norms too,\n"
        "    applied after RoPE), the shared MLP, the experts and the loss. Its\n"
        "    stock forward adds no router loss, and neither does the patched one.",
    ),
    # 0.8.5's DeepSeek functions default to rope=False, and V4's to swiglu=False
    "apply_liger_kernel_to_deepseek_v2": (
        _SWIGLU.replace("rope: 'bool' = True", "rope: 'bool' = False"),
        "Patch DeepSeek-V2: RMSNorm (the attention's q/kv latent norms too), the\n"
        "    dense and shared-experts SwiGLU MLPs, the experts and the loss (its\n"
        "    stock forward adds no router loss). RoPE stays stock: MLA rotates\n"
        "    interleaved pairs of the rope slice (as complex numbers), which the Liger\n"
        "    RoPE op (rotate-half) does not compute, so ``rope`` defaults to False and\n"
        "    ``rope=True`` is ignored with a warning. The router stays stock.",
    ),
    "apply_liger_kernel_to_deepseek_v3": (
        _SWIGLU.replace("rope: 'bool' = True", "rope: 'bool' = False"),
        "Patch DeepSeek-V3: as DeepSeek-V2 (RMSNorm with the latent norms, dense\n"
        "    and shared-experts SwiGLU MLPs, the experts, the loss; no router loss\n"
        "    in its stock forward). RoPE stays stock (``rope`` defaults to False,\n"
        "    ``rope=True`` is ignored with a warning): with ``rope_interleave`` (its\n"
        "    default) it rotates interleaved pairs, which the Liger RoPE op does not\n"
        "    compute, and its rotate-half path without it is left stock too, as in\n"
        "    0.8.5. The sigmoid, group-limited router stays stock.",
    ),
    "apply_liger_kernel_to_deepseek_v4": (
        _SWIGLU.replace("rope: 'bool' = True", "rope: 'bool' = False").replace(
            "swiglu: 'bool' = True", "swiglu: 'bool' = False"
        ),
        "Patch DeepSeek-V4: its weighted RMSNorms (fp32 weights multiplied before\n"
        '    the one cast back, casting "gemma") and the loss, which keeps the router\n'
        "    load-balancing loss. Stock, as no Liger op computes them: RoPE (interleaved\n"
        "    pairs; ``rope`` defaults to False), the shared and routed experts (gate and\n"
        "    up clamped by ``swiglu_limit``; ``swiglu`` defaults to False), the\n"
        "    weightless query and hyper-connection norms, the hyper-connections, the\n"
        "    KV compressors and indexer, the attention sinks and the routers. ``True``\n"
        "    for ``rope`` or ``swiglu`` is ignored with a warning.",
    ),
    "apply_liger_kernel_to_qwen3_next": (
        _SWIGLU.replace("rope: 'bool' = True", "rope: 'bool' = False"),
        "Patch Qwen3-Next: its ``(1 + weight)`` norms (layer, q/k and final), the\n"
        "    SwiGLU of the dense MLPs and shared experts, the experts, and the\n"
        "    fused loss with the router loss. ``rope`` defaults to False as in 0.8.5;\n"
        "    ``rope=True`` patches its partial rotary (the op rotates the leading\n"
        "    dimensions). The gated norm of the Gated-DeltaNet layers\n"
        "    (``norm(x) * silu(gate)``) and the linear attention stay stock.",
    ),
    "apply_liger_kernel_to_muse_glimmer": (
        _SWIGLU.replace("rms_norm: 'bool'", "layer_norm: 'bool' = True, rms_norm: 'bool'"),
        "Patch MuseGlimmer (``MuseGlimmerForConditionalGeneration``). Text decoder:\n"
        "    RoPE, its ``(1 + weight)`` layer norms, the other RMSNorms (final norm, and\n"
        "    the weight-free q/k, embedding and image-feature norms), the SwiGLU MLP and\n"
        "    the loss (fused: ``output_multiplier`` and the softcap applied). Vision\n"
        "    tower: its LayerNorms (``layer_norm``). Its 2-D rotary embedding and GELU\n"
        "    MLP stay stock (neither is a Liger op's math).",
    ),
    "apply_liger_kernel_to_gemma4_text": (
        _GEGLU.replace("rope: 'bool' = True", "rope: 'bool' = False"),
        "Patch the Gemma-4 text model (``Gemma4ForCausalLM``): every Gemma4RMSNorm\n"
        "    (weight-scaled, and the scale-free value and router norms), the GEGLU MLP\n"
        "    and the loss (softcapped). RoPE stays stock: Gemma-4 rotates q and k in\n"
        "    separate calls, one tensor each, which the Liger RoPE op's (q, k) form does\n"
        "    not take; ``rope`` defaults to False and ``rope=True`` is ignored with a\n"
        "    warning. The MoE block's experts (GELU gate) stay stock.",
    ),
    # 0.8.5's first three switches in its order; rope and layer_norm in place of its **kwargs
    "apply_liger_kernel_to_nemotron": (
        "(relu_squared: 'bool' = True, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
        "rope: 'bool' = True, layer_norm: 'bool' = True, model: 'nn.Module | None' = None) -> 'None'",
        "Patch Nemotron: the MLP's squared ReLU (``relu2``), RoPE, the LayerNorm1P\n"
        "    norms and the loss. With ``model=``, also convert that model's modules.\n"
        "\n"
        "    ``relu_squared`` builds the MLPs' activation as :class:`LigerReLUSquared`\n"
        '    (where ``config.hidden_act`` is "relu2"; another activation stays stock).\n'
        "    ``rope``: Nemotron rotates the leading ``partial_rotary_factor`` share of\n"
        "    each head (rotate-half), which :func:`liger_rotary_pos_emb` computes\n"
        "    exactly, passing the rest through. ``layer_norm``: ``NemotronLayerNorm1P``\n"
        "    (LayerNorm with scale ``weight + 1``) becomes\n"
        "    :class:`~liger_kernel.transformers.layer_norm.LigerLayerNormForNemotron`,\n"
        "    the LayerNorm op with that scale. 0.8.5 patched neither RoPE nor the norms.\n"
        "\n"
        "    Unlike 0.8.5's ``(relu_squared, cross_entropy, fused_linear_cross_entropy,\n"
        "    model, **kwargs)``, the switches are explicit keyword parameters ending in\n"
        "    ``model`` (frameworks pass on only what the signature shows): an unknown\n"
        "    keyword raises TypeError here instead of being ignored.",
    ),
    # 0.8.5's GPT-OSS function defaults to swiglu=False
    "apply_liger_kernel_to_gpt_oss": (
        _SWIGLU.replace("swiglu: 'bool' = True", "swiglu: 'bool' = False"),
        "Patch GPT-OSS: its RMSNorms (weight times the fp32 normalized x, cast\n"
        '    once: casting "gemma"), RoPE on its half-width cos/sin\n'
        "    (:func:`liger_rotary_pos_emb_gpt_oss`) and the fused loss, which keeps the\n"
        "    router load-balancing loss. ``swiglu`` installs the clamped SwiGLU op\n"
        "    (:class:`liger_kernel.ops.LigerClampedSwiGLUFunction`) as the experts'\n"
        "    ``_apply_gate``; it defaults to False, as in liger-kernel 0.8.5, which\n"
        "    left GPT-OSS's experts stock. The experts' GEMMs, the router, and the\n"
        "    attention with its sinks and sliding-window layers stay stock.",
    ),
    # not in 0.8.5, which sends model_type llama4_text to its multimodal apply_liger_kernel_to_llama4
    "apply_liger_kernel_to_llama4_text": (
        _SWIGLU,
        "Patch the Llama 4 text model (``Llama4ForCausalLM``): its complex-form RoPE\n"
        "    (``apply_rotary_emb``, by the llama4_rope op; NoPE layers skip it as stock),\n"
        "    RMSNorm and the RoPE layers' q/k ``Llama4TextL2Norm`` (an RMSNorm without\n"
        "    weight), the dense MLPs and the MoE layers' shared expert (``Llama4TextMLP``)\n"
        "    by the SwiGLU MLP, and the loss (no load-balancing term, as stock; router\n"
        "    logits passed on). The routed experts (``Llama4TextExperts``, batched\n"
        "    matmuls with no gate function to replace) and the router stay stock.",
    ),
    "apply_liger_kernel_to_falcon_h1": (
        _SWIGLU,
        "Patch Falcon-H1 (hybrid: attention and a Mamba-2 mixer side by side in\n"
        "    every layer): RoPE, the layer and final RMSNorms, the MLP with its\n"
        "    ``mlp_multipliers`` (:class:`LigerFalconH1SwiGLUMLP`) and the loss (the\n"
        "    fused one applies the decoder's ``lm_head_multiplier``). The Mamba-2\n"
        "    mixer stays stock, its gated RMSNorm (``FalconH1RMSNormGated``) included;\n"
        "    so do the muP multipliers of embeddings, keys, attention and SSM\n"
        "    inputs/outputs, which the stock decoder applies around the patched parts.",
    ),
    # the vision-language families: 0.8.5's parameters and defaults, this project's extra switches after them
    # (or, where 0.8.5 took **kwargs, explicit before model); 0.8.5's Qwen3.5 functions default to rope=False
    "apply_liger_kernel_to_qwen3_5": (
        (
            "(rope: 'bool' = False, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
            "rms_norm: 'bool' = True, swiglu: 'bool' = True, model: 'nn.Module | None' = None, "
            "layer_norm: 'bool' = True) -> 'None'"
        ),
        "Patch the Qwen3.5 text decoder (hybrid: Gated-DeltaNet and gated\n"
        "    full-attention layers) and ``Qwen3_5ForCausalLM`` (model types ``qwen3_5``\n"
        "    and ``qwen3_5_text``): its ``(1 + weight)`` norms (layer, q/k and final),\n"
        "    the SwiGLU MLP and the fused loss. ``rope`` defaults to False as in 0.8.5;\n"
        "    ``rope=True`` patches ``apply_rotary_pos_emb``, the partial rotate-half of\n"
        "    the cos/sin its rotary embedding composes (the interleaved M-RoPE layout\n"
        "    is built there, and stays stock). The Gated-DeltaNet layers' gated norm\n"
        "    (``norm(x) * silu(gate)``) and linear attention stay stock.\n"
        "    ``Qwen3_5ForConditionalGeneration``: the fused loss; vision tower: its\n"
        "    LayerNorms (``layer_norm``, a switch 0.8.5 did not have); with ``rope=True`` its\n"
        "    2-D rotary embedding too (the vision_rope op). Its GELU MLP stays stock.",
    ),
    "apply_liger_kernel_to_qwen3_5_moe": (
        (
            "(rope: 'bool' = False, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
            "rms_norm: 'bool' = True, swiglu: 'bool' = True, model: 'nn.Module | None' = None, "
            "layer_norm: 'bool' = True) -> 'None'"
        ),
        "Patch the Qwen3.5-MoE text decoder, in ``Qwen3_5MoeForCausalLM`` (model\n"
        "    types ``qwen3_5_moe`` and ``qwen3_5_moe_text``): its ``(1 + weight)`` norms\n"
        "    (layer, q/k and final), the shared experts' SwiGLU, the experts (the fused\n"
        "    MoE op) and the fused loss with the router loss. ``rope`` defaults to False\n"
        "    as in 0.8.5; ``rope=True`` patches its partial rotate-half\n"
        "    ``apply_rotary_pos_emb`` (the interleaved M-RoPE layout is composed by its\n"
        "    rotary embedding, which stays stock). The Gated-DeltaNet layers' gated norm\n"
        "    and linear attention, the router and the shared expert's sigmoid gate stay\n"
        "    stock.\n"
        "    ``Qwen3_5MoeForConditionalGeneration``: the fused loss with the router loss;\n"
        "    vision tower: its LayerNorms (``layer_norm``, a switch 0.8.5 did not have); with\n"
        "    ``rope=True`` its 2-D rotary embedding too. Its GELU MLP stays stock.",
    ),
    "apply_liger_kernel_to_qwen2_vl": (
        (
            "(rope: 'bool' = True, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
            "rms_norm: 'bool' = True, layer_norm: 'bool' = True, swiglu: 'bool' = True, "
            "model: 'nn.Module | None' = None) -> 'None'"
        ),
        "Patch Qwen2-VL. Text decoder: RoPE (the cos/sin its M-RoPE embedding composes),\n"
        "    RMSNorm, SwiGLU MLP; the loss of ``Qwen2VLForConditionalGeneration`` (fused).\n"
        "    Vision tower: its LayerNorms (``layer_norm``), its 2-D rotary embedding (``rope``,\n"
        "    the vision_rope op). Its QuickGELU MLP stays stock (no Liger op computes it).",
    ),
    "apply_liger_kernel_to_qwen2_5_vl": (
        (
            "(rope: 'bool' = True, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
            "rms_norm: 'bool' = True, swiglu: 'bool' = True, model: 'nn.Module | None' = None) -> 'None'"
        ),
        "Patch Qwen2.5-VL. Text decoder: RoPE (on its composed M-RoPE cos/sin), RMSNorm,\n"
        "    SwiGLU MLP; the fused loss of ``Qwen2_5_VLForConditionalGeneration``. Vision\n"
        "    tower: its RMSNorms (the same class as the text's) and its biased SwiGLU MLPs\n"
        "    (``swiglu``), its 2-D rotary embedding (``rope``, the vision_rope op).",
    ),
    "apply_liger_kernel_to_qwen3_vl": (
        (
            "(rope: 'bool' = True, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
            "rms_norm: 'bool' = True, swiglu: 'bool' = False, model: 'nn.Module | None' = None, "
            "layer_norm: 'bool' = True) -> 'None'"
        ),
        "Patch Qwen3-VL. Text decoder: RoPE (on its composed interleaved M-RoPE\n"
        "    cos/sin), RMSNorm (per-head q/k norms too), the SwiGLU MLP with ``swiglu=True``\n"
        "    (default False, as in 0.8.5); the fused loss of\n"
        "    ``Qwen3VLForConditionalGeneration``. Vision tower: its LayerNorms\n"
        "    (``layer_norm``, a switch 0.8.5 did not have), its 2-D rotary embedding (``rope``,\n"
        "    the vision_rope op). Its GELU MLP stays stock; so does the deepstack merger's MLP.",
    ),
    "apply_liger_kernel_to_qwen3_vl_moe": (
        (
            "(rope: 'bool' = True, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
            "rms_norm: 'bool' = True, swiglu: 'bool' = True, model: 'nn.Module | None' = None, "
            "layer_norm: 'bool' = True) -> 'None'"
        ),
        "Patch Qwen3-VL-MoE. Text decoder: RoPE, RMSNorm (q/k norms too), the dense\n"
        "    SwiGLU MLPs and the experts (fused MoE op, ``swiglu``); the fused loss of\n"
        "    ``Qwen3VLMoeForConditionalGeneration`` with the router loss. Vision tower: its\n"
        "    LayerNorms (``layer_norm``), its 2-D rotary embedding (``rope``). Its GELU MLP and\n"
        "    the router stay stock.",
    ),
    "apply_liger_kernel_to_gemma3": (
        (
            "(rope: 'bool' = True, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
            "layer_norm: 'bool' = True, rms_norm: 'bool' = True, geglu: 'bool' = True, "
            "model: 'nn.Module | None' = None) -> 'None'"
        ),
        "Patch Gemma 3 (``Gemma3ForConditionalGeneration``). Text decoder: as\n"
        "    ``apply_liger_kernel_to_gemma3_text`` (RoPE, offset-1 RMSNorms, GEGLU); the\n"
        "    projector's soft-embedding norm (a Gemma3RMSNorm) too; the fused loss (not\n"
        "    softcapped: the stock multimodal head is not). Vision tower (SigLIP): its\n"
        "    LayerNorms (``layer_norm``). Its GELU MLP stays stock.",
    ),
    "apply_liger_kernel_to_gemma4": (
        (
            "(rope: 'bool' = False, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
            "layer_norm: 'bool' = False, rms_norm: 'bool' = True, geglu: 'bool' = True, "
            "model: 'nn.Module | None' = None) -> 'None'"
        ),
        "Patch Gemma 4 (``Gemma4ForConditionalGeneration``). Text decoder: as\n"
        "    ``apply_liger_kernel_to_gemma4_text`` (RMSNorms, GEGLU; RoPE stays stock, its\n"
        "    one-tensor form is not the op's); the vision and audio towers' Gemma4RMSNorms\n"
        "    (the same class); the fused loss (softcapped). ``layer_norm`` (default False,\n"
        "    as in 0.8.5) converts the towers' LayerNorms with weight and bias. The vision\n"
        "    MLP, the multi-dimensional vision RoPE and the audio blocks stay stock.",
    ),
    "apply_liger_kernel_to_paligemma": (
        (
            "(rope: 'bool' = True, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
            "layer_norm: 'bool' = True, rms_norm: 'bool' = True, geglu: 'bool' = True, "
            "model: 'nn.Module | None' = None) -> 'None'"
        ),
        "Patch PaliGemma. The language model (built from ``text_config``: Gemma,\n"
        "    Gemma 2) takes its own family's patch (``rope``, ``rms_norm``, ``geglu``) when the\n"
        "    model is built or given; the loss of ``PaliGemmaForConditionalGeneration`` is\n"
        "    fused (softcapped where the text config says). Vision tower (SigLIP): its\n"
        "    LayerNorms (``layer_norm``); its GELU MLP stays stock.",
    ),
    "apply_liger_kernel_to_llava": (
        (
            "(cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, rope: 'bool' = True, "
            "rms_norm: 'bool' = True, swiglu: 'bool' = True, geglu: 'bool' = True, layer_norm: 'bool' = True, "
            "model: 'nn.Module | None' = None) -> 'None'"
        ),
        "Patch LLaVA. The language model (built from ``text_config``) takes its own\n"
        "    family's patch (``rope``, ``rms_norm``, ``swiglu``/``geglu``) when the model is\n"
        "    built or given; the loss of ``LlavaForConditionalGeneration`` is fused. Vision\n"
        "    tower: its LayerNorms (``layer_norm``; CLIP's, SigLIP's), or its own patch\n"
        "    where it has one (Pixtral). The tower's GELU MLPs stay stock. Unlike 0.8.5's\n"
        "    ``(cross_entropy, fused_linear_cross_entropy, model, **kwargs)``, the switches\n"
        "    are explicit keyword parameters ending in ``model``.",
    ),
    "apply_liger_kernel_to_internvl": (
        (
            "(cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, rms_norm: 'bool' = True, "
            "layer_norm: 'bool' = True, rope: 'bool' = True, swiglu: 'bool' = True, geglu: 'bool' = True, "
            "model: 'nn.Module | None' = None) -> 'None'"
        ),
        "Patch InternVL. The language model (built from ``text_config``) takes its own\n"
        "    family's patch when the model is built or given; the loss of\n"
        "    ``InternVLForConditionalGeneration`` is fused. Vision tower: its RMSNorms\n"
        "    (``rms_norm``) and LayerNorms (``layer_norm``; the projector's too). Its GELU\n"
        "    MLP stays stock. The switches are explicit keyword parameters (0.8.5: ``**kwargs``).",
    ),
    "apply_liger_kernel_to_smolvlm": (
        (
            "(cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, rms_norm: 'bool' = True, "
            "layer_norm: 'bool' = True, rope: 'bool' = True, swiglu: 'bool' = True, geglu: 'bool' = True, "
            "model: 'nn.Module | None' = None) -> 'None'"
        ),
        "Patch SmolVLM. The language model (built from ``text_config``, Llama) takes\n"
        "    its own family's patch when the model is built or given; the loss of\n"
        "    ``SmolVLMForConditionalGeneration`` is fused. Vision tower: its LayerNorms\n"
        "    (``layer_norm``); its GELU MLP and the connector stay stock. The switches are\n"
        "    explicit keyword parameters (0.8.5: ``**kwargs``).",
    ),
    "apply_liger_kernel_to_mllama": (
        (
            "(rope: 'bool' = True, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
            "layer_norm: 'bool' = True, rms_norm: 'bool' = True, swiglu: 'bool' = True, "
            "model: 'nn.Module | None' = None) -> 'None'"
        ),
        "Patch Mllama (Llama 3.2 Vision). Text decoder (self- and cross-attention\n"
        "    layers): RoPE, RMSNorm (the cross-attention q/k norms too), SwiGLU MLP; the\n"
        "    fused loss of ``MllamaForConditionalGeneration`` and of the text-only\n"
        "    ``MllamaForCausalLM``. Vision tower: its LayerNorms (``layer_norm``); its GELU\n"
        "    MLP and gated positional embeddings stay stock.",
    ),
    "apply_liger_kernel_to_glm4v": (
        (
            "(rope: 'bool' = False, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
            "rms_norm: 'bool' = True, swiglu: 'bool' = True, model: 'nn.Module | None' = None) -> 'None'"
        ),
        "Patch GLM-4V. Text decoder: its RMSNorms (four per layer; the vision tower's\n"
        "    are the same class), the fused gate_up SwiGLU MLP; the fused loss of\n"
        "    ``Glm4vForConditionalGeneration``. Vision tower: its SwiGLU MLPs (``swiglu``).\n"
        "    The text RoPE stays stock (GLM rotates interleaved pairs); ``rope=True`` (default\n"
        "    False, as in 0.8.5) patches the vision tower's 2-D rotary embedding. The patch\n"
        "    merger stays stock.",
    ),
    "apply_liger_kernel_to_glm4v_moe": (
        (
            "(rope: 'bool' = False, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
            "rms_norm: 'bool' = True, swiglu: 'bool' = True, model: 'nn.Module | None' = None) -> 'None'"
        ),
        "Patch GLM-4V-MoE. Text decoder: RMSNorm, the dense and shared-expert SwiGLU\n"
        "    MLPs, the experts (fused MoE op); the fused loss of\n"
        "    ``Glm4vMoeForConditionalGeneration`` with the router loss. Vision tower: its\n"
        "    RMSNorms and SwiGLU MLPs. The text RoPE stays stock (interleaved pairs);\n"
        "    ``rope=True`` (default False) patches the vision tower's 2-D rotary embedding.\n"
        "    The router and the patch merger stay stock.",
    ),
    "apply_liger_kernel_to_llama4": (
        (
            "(rope: 'bool' = True, cross_entropy: 'bool' = False, fused_linear_cross_entropy: 'bool' = True, "
            "rms_norm: 'bool' = True, swiglu: 'bool' = True, model: 'nn.Module | None' = None, "
            "layer_norm: 'bool' = True) -> 'None'"
        ),
        "Patch Llama 4 (``Llama4ForConditionalGeneration``). Text model: as\n"
        "    ``apply_liger_kernel_to_llama4_text`` (complex-form RoPE, RMSNorm and the q/k L2\n"
        "    norm, SwiGLU MLPs, loss); the fused loss of the multimodal head too. Vision\n"
        "    tower: its LayerNorms (``layer_norm``), its complex-form 2-D rotary embedding\n"
        "    (``rope``, the llama4_vision_rope op). Its GELU MLPs, the pixel-shuffle MLP and\n"
        "    the routed experts stay stock.",
    ),
    "apply_liger_kernel_to_pixtral": (
        (
            "(rope: 'bool' = True, rms_norm: 'bool' = True, swiglu: 'bool' = True, "
            "model: 'nn.Module | None' = None) -> 'None'"
        ),
        "Patch the Pixtral vision encoder (``PixtralVisionModel``, the tower of\n"
        "    Mistral's vision-language models): its RMSNorms, and its MLPs where\n"
        "    ``hidden_act`` is SiLU (the SwiGLU MLP; Pixtral's default GELU MLP stays\n"
        "    stock), converted when a model is built or given. Its 2-D rotary embedding\n"
        "    stays stock for now, whatever ``rope`` says (the vision RoPE op will take it).",
    ),
}


def test_the_expected_functions_are_public():
    public = {name for name in liger_transformers.__all__ if name.startswith("apply_liger_kernel_to_")}
    assert public == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_signature_and_docstring(name):
    function = getattr(liger_transformers, name)
    signature, doc = EXPECTED[name]
    assert str(inspect.signature(function)) == signature
    assert inspect.getdoc(function) == inspect.cleandoc(doc)
    # plain functions of the module, as written by hand: the same through
    # every introspection path (getfullargspec, __defaults__, pickling by name)
    assert function.__module__ == monkey_patch.__name__
    assert function.__name__ == function.__qualname__ == name
    assert getattr(monkey_patch, name) is function
    parameters = inspect.signature(function).parameters.values()
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters)
    assert function.__defaults__ == tuple(p.default for p in parameters)
    assert inspect.getfullargspec(function).args == [p.name for p in parameters]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_type_table_names_the_function(name):
    model_type = name.removeprefix("apply_liger_kernel_to_")
    assert monkey_patch.MODEL_TYPE_TO_APPLY_LIGER_FN[model_type] is getattr(monkey_patch, name)


def test_positional_arguments_follow_the_signature():
    # a caller passing the switches positionally gets what the signature says
    with pytest.raises(ValueError, match="cannot both be True"):
        liger_transformers.apply_liger_kernel_to_llama(True, True, True)
    with pytest.raises(TypeError):
        liger_transformers.apply_liger_kernel_to_llama(swish=True)
