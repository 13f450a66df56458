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
        "Patch Mixtral. ``swiglu`` covers the experts' gate (``_apply_gate``,\n"
        "    used by the grouped_mm and batched_mm experts implementations); the fused\n"
        "    loss keeps the router load-balancing loss.",
    ),
    "apply_liger_kernel_to_qwen2": (_SWIGLU, "Patch Qwen2 (as :func:`apply_liger_kernel_to_llama`)."),
    "apply_liger_kernel_to_qwen3": (_SWIGLU, "Patch Qwen3; ``rms_norm`` includes the per-head q/k norms."),
    "apply_liger_kernel_to_qwen3_moe": (
        _SWIGLU,
        "Patch Qwen3-MoE: dense MLP layers and the experts' gate (see Mixtral).",
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
