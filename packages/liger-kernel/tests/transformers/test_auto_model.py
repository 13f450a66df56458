"""AutoLigerKernelForCausalLM builds patched models from a config and from a
saved model folder (a tiny model saved in the test, no download)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import batch, build, count_op_calls, tiny_config

from liger_kernel.transformers import AutoLigerKernelForCausalLM, LigerRMSNorm, LigerSwiGLUMLP
from liger_kernel.transformers.model.causal_lm import causal_lm_forward


def test_from_config_builds_liger_modules_and_takes_the_switches():
    model = AutoLigerKernelForCausalLM.from_config(tiny_config("llama"), swiglu=False, attn_implementation="eager")
    assert all(isinstance(layer.input_layernorm, LigerRMSNorm) for layer in model.model.layers)
    assert not any(isinstance(layer.mlp, LigerSwiGLUMLP) for layer in model.model.layers)
    assert type(model).forward is causal_lm_forward
    with count_op_calls() as calls:
        model(**batch()).loss.backward()
    assert calls["fused_linear_cross_entropy"] == 1 and calls["rope"] == 2 and not calls["swiglu"]


def test_from_pretrained_loads_a_saved_model_with_its_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    stock = build("llama", device="cpu")
    stock.save_pretrained(tmp_path)
    model = AutoLigerKernelForCausalLM.from_pretrained(tmp_path, attn_implementation="eager", dtype=torch.float32)
    assert all(type(layer.mlp) is LigerSwiGLUMLP for layer in model.model.layers)
    ids = batch(device="cpu")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, stock(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_a_model_type_without_a_patch_loads_unchanged():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=128, n_positions=32)
    model = AutoLigerKernelForCausalLM.from_config(config)
    assert type(model).__name__ == "GPT2LMHeadModel"
