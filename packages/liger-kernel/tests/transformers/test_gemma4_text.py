"""Gemma-4's text model beyond the family table's shared tests: its own output
fields, 0.8.5's ``causal_forward``, and RoPE left stock."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from tiny_models import batch, build, count_op_calls

pytest.importorskip("transformers.models.gemma4")

from transformers.models.gemma4 import modeling_gemma4

from liger_kernel.transformers import _apply_liger_kernel_to_instance, apply_liger_kernel_to_gemma4_text
from liger_kernel.transformers.model import gemma4
from liger_kernel.transformers.model.output_classes import LigerGemma4CausalLMOutputWithPast
from liger_kernel.transformers.rms_norm import LigerRMSNormForGemma4


def test_rope_stays_stock(caplog):
    assert inspect.signature(apply_liger_kernel_to_gemma4_text).parameters["rope"].default is False
    stock_rope = modeling_gemma4.apply_rotary_pos_emb
    apply_liger_kernel_to_gemma4_text(rope=True)
    assert modeling_gemma4.apply_rotary_pos_emb is stock_rope
    assert "rope=True is ignored" in caplog.text


def test_output_keeps_gemma4s_fields_and_scale_free_norms_convert():
    stock = build("gemma4_text")
    patched = copy.deepcopy(stock)
    _apply_liger_kernel_to_instance(model=patched)
    attention = patched.model.layers[0].self_attn
    assert type(attention.v_norm) is LigerRMSNormForGemma4 and attention.v_norm.weight is None
    assert patched.model.layers[0].router.norm.weight is None
    data = batch()
    patched.eval()
    stock.eval()
    with torch.no_grad():
        got = patched(**data, return_shared_kv_states=True, output_router_logits=True)
        expected = stock(**data, return_shared_kv_states=True, output_router_logits=True)
    assert isinstance(got, LigerGemma4CausalLMOutputWithPast)
    assert got.shared_kv_states is not None and got.shared_kv_states.keys() == expected.shared_kv_states.keys()
    assert len(got.router_logits) == len(expected.router_logits) == 2
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-4, atol=2e-5)


def test_causal_forward_has_0_8_5s_parameters_and_is_the_patched_forward():
    parameters = inspect.signature(gemma4.causal_forward).parameters
    assert list(parameters)[-1] == "loss_kwargs" and parameters["loss_kwargs"].kind is inspect.Parameter.VAR_KEYWORD
    stock = build("gemma4_text")
    patched = copy.deepcopy(stock)
    _apply_liger_kernel_to_instance(model=patched)
    data = batch()
    with count_op_calls() as calls:
        got = gemma4.causal_forward(stock, input_ids=data["input_ids"], labels=data["labels"])
    assert calls["fused_linear_cross_entropy"] == 1 and got.logits is None
    assert got.loss.item() == pytest.approx(patched(**data).loss.item(), rel=1e-5)
