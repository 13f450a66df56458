"""liger-kernel 0.8.5's per-family modules ``liger_kernel.transformers.model.<family>``:
their ``lce_forward`` is the shared patched forward under 0.8.5's parameters,
and the families added with them are reached by every entry point."""

from __future__ import annotations

import copy
import importlib
import inspect

import pytest
import torch
from tiny_models import batch, build, count_op_calls, tiny_config

from liger_kernel.transformers import (
    MODEL_TYPE_TO_APPLY_LIGER_FN,
    AutoLigerKernelForCausalLM,
    LigerRMSNorm,
    _apply_liger_kernel_to_instance,
)
from liger_kernel.transformers.model.causal_lm import causal_lm_forward
from liger_kernel.transformers.monkey_patch import FAMILIES

#: 0.8.5's module name -> the model type whose forward it is
MODULES = {
    "llama": "llama",
    "mistral": "mistral",
    "mixtral": "mixtral",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "qwen3_moe": "qwen3_moe",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "phi3": "phi3",
    "olmo2": "olmo2",
    "olmo3": "olmo3",
    "smollm3": "smollm3",
    "ministral": "ministral",
    "exaone4": "exaone4",
    "hunyuan_v1": "hunyuan_v1_dense",
    "glm4": "glm4",
    "deepseek_v2": "deepseek_v2",
    "deepseek_v3": "deepseek_v3",
    "deepseek_v4": "deepseek_v4",
    "qwen3_next": "qwen3_next",
    "gpt_oss": "gpt_oss",
    "llama4": "llama4_text",  # 0.8.5's Llama4ForCausalLM forward, the text model's
    "falcon_h1": "falcon_h1",
    "qwen3_5": "qwen3_5",  # 0.8.5's Qwen3_5ForCausalLM forward (the text model's)
    "qwen3_5_moe": "qwen3_5_moe",
}
NEW = ("smollm3", "ministral", "olmo3", "exaone4", "hunyuan_v1_dense", "glm4", "falcon_h1")


def _lce_forward(module: str):
    return importlib.import_module(f"liger_kernel.transformers.model.{module}").lce_forward


def _stock_and_patched(family: str):
    stock = build(family)
    patched = copy.deepcopy(stock)
    _apply_liger_kernel_to_instance(model=patched)
    return stock, patched


def test_every_module_is_a_patched_family():
    for module, family in MODULES.items():
        lce_forward = _lce_forward(module)
        assert lce_forward.__module__ == f"liger_kernel.transformers.model.{module}"
        assert inspect.getsource(lce_forward).startswith("def lce_forward(")
        # 0.8.5 gave DeepSeek-V2/V3 the dense parameters; a router switch always means a MoE family
        if "output_router_logits" in inspect.signature(lce_forward).parameters:
            assert FAMILIES[family].moe
        assert lce_forward.__globals__["_FORWARD"] is FAMILIES[family].lm_forward()


# a dense family, a MoE one (router loss), a return_dict-last order, a stock-RoPE family, the softcapped one,
# a MoE one with dense parameters (no router loss), one with the passed-on keywords left to **kwargs, a hybrid,
# one without return_dict, one with router logits and no router loss, the hybrid with a head multiplier,
# the Qwen3.5 text models (dense without the passed-on keywords; MoE with mm_token_type_ids)
@pytest.mark.parametrize(
    "module",
    [
        "llama",
        "qwen3_moe",
        "exaone4",
        "glm4",
        "gemma2",
        "deepseek_v3",
        "deepseek_v4",
        "qwen3_next",
        "gpt_oss",
        "llama4",
        "falcon_h1",
        "qwen3_5",
        "qwen3_5_moe",
    ],
)
def test_lce_forward_on_a_stock_model_is_the_patched_forward(module):
    stock, patched = _stock_and_patched(MODULES[module])
    data = batch()
    with count_op_calls() as calls:
        got = _lce_forward(module)(stock, input_ids=data["input_ids"], labels=data["labels"])
    expected = patched(**data)
    assert calls["fused_linear_cross_entropy"] == 1 and got.logits is None
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-6)
    if module in ("qwen3_moe", "deepseek_v4", "qwen3_next", "gpt_oss", "qwen3_5_moe"):  # with a router loss
        assert got.aux_loss is not None
        torch.testing.assert_close(got.aux_loss, expected.aux_loss)
    got.loss.backward()
    expected.loss.backward()
    torch.testing.assert_close(stock.lm_head.weight.grad, patched.lm_head.weight.grad, rtol=1e-5, atol=1e-7)


def test_lce_forward_takes_past_key_values_and_return_dict():
    model = build("llama")
    model.eval()
    ids = batch()["input_ids"]
    lce_forward = _lce_forward("llama")
    with torch.no_grad():
        whole = model(input_ids=ids).logits
        first = lce_forward(model, input_ids=ids[:, :8], use_cache=True)
        cache = getattr(first, "cache", None) or first.past_key_values
        rest = lce_forward(model, input_ids=ids[:, 8:], past_key_values=cache, use_cache=True, return_dict=False)
    assert isinstance(rest, tuple)
    torch.testing.assert_close(rest[0], whole[:, 8:], rtol=1e-5, atol=1e-5)


def test_qwen3_5_moe_lce_forward_passes_mm_token_type_ids_on_only_when_given():
    """0.8.5's Qwen3.5-MoE forward names mm_token_type_ids: given, it reaches the
    text decoder as a keyword (as the stock forward's ``**kwargs`` do); left out,
    the decoder sees no such keyword."""
    model = build("qwen3_5_moe")
    seen = []
    model.model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(dict(kwargs)), with_kwargs=True)
    data = batch()
    types = torch.zeros_like(data["input_ids"])
    lce_forward = _lce_forward("qwen3_5_moe")
    with torch.no_grad():
        plain = lce_forward(model, **data)
        given = lce_forward(model, **data, mm_token_type_ids=types)
        expected = model(**data, mm_token_type_ids=types)
    assert "mm_token_type_ids" not in seen[0] and seen[1]["mm_token_type_ids"] is types
    assert seen[2]["mm_token_type_ids"] is types  # the stock forward passes it on alike
    assert given.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)
    assert given.loss.item() == pytest.approx(plain.loss.item(), rel=1e-6)


def test_deepseek_v4_lce_forward_takes_return_dict_as_a_keyword():
    """0.8.5's DeepSeek-V4 forward names no return_dict; given as a keyword it still gives a tuple."""
    model = build("deepseek_v4")
    model.eval()
    ids = batch()["input_ids"]
    with torch.no_grad():
        expected = model(input_ids=ids, return_dict=False)
        got = _lce_forward("deepseek_v4")(model, input_ids=ids, return_dict=False)
    assert isinstance(got, tuple) and isinstance(expected, tuple)
    # (aux_loss, logits) first, as stock: the tiny config outputs the router logits
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1])


@pytest.mark.parametrize("module", ["llama", "smollm3"])
def test_lce_maybe_trainable_lm_head_fuses_a_plain_head_and_calls_any_other(module):
    from liger_kernel.transformers.model.smollm3 import lce_maybe_trainable_lm_head

    assert importlib.import_module(f"liger_kernel.transformers.model.{module}").lce_maybe_trainable_lm_head is (
        lce_maybe_trainable_lm_head
    )
    model = build(MODULES[module])
    data = batch()
    with torch.no_grad():
        hidden = model.model(input_ids=data["input_ids"]).last_hidden_state
        expected = model(**data).loss
        size = model.config.hidden_size
        with count_op_calls() as calls:
            fused = lce_maybe_trainable_lm_head(model, hidden, size, data["labels"], None)
        assert calls["fused_linear_cross_entropy"] == 1
        model.lm_head.register_forward_hook(lambda *_: None)  # a hooked head must be called
        with count_op_calls() as calls:
            called = lce_maybe_trainable_lm_head(model, hidden, size, data["labels"], None)
        assert calls["cross_entropy"] == 1 and not calls["fused_linear_cross_entropy"]
    assert fused.item() == pytest.approx(expected.item(), rel=1e-5)
    assert called.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("family", NEW)
def test_new_families_reach_every_entry_point(family):
    assert MODEL_TYPE_TO_APPLY_LIGER_FN[family].__name__ == f"apply_liger_kernel_to_{family}"
    model = AutoLigerKernelForCausalLM.from_config(tiny_config(family), attn_implementation="eager")
    assert type(model).forward is causal_lm_forward
    final_norm = getattr(model.model, "norm", None) or model.model.final_layernorm  # Falcon-H1's name
    assert type(final_norm) is FAMILIES[family].liger_rms_norm
    assert any(type(m) is FAMILIES[family].liger_mlp for m in model.modules())


def test_hunyuan_conversion_keeps_the_mlp_layer_index_and_converts_the_head_norms():
    from liger_kernel.transformers.swiglu import LigerHunyuanV1SwiGLUMLP

    model = build("hunyuan_v1_dense")
    for index, layer in enumerate(model.model.layers):
        layer.mlp.layer_idx = index  # as a decoder that passes layer_idx builds them
    _apply_liger_kernel_to_instance(model=model)
    assert [type(layer.mlp) for layer in model.model.layers] == [LigerHunyuanV1SwiGLUMLP] * 2
    assert [layer.mlp.layer_idx for layer in model.model.layers] == [0, 1]
    attention = model.model.layers[0].self_attn
    assert type(attention.query_layernorm) is type(attention.key_layernorm) is LigerRMSNorm
