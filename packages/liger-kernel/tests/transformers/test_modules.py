"""The Liger modules and functional API against the Transformers / torch
modules they replace."""

from __future__ import annotations

import builtins
import importlib

import pytest
import torch
import torch.nn.functional as F
from tiny_models import build, count_op_calls, tiny_config
from transformers.models.gemma.modeling_gemma import GemmaRMSNorm
from transformers.models.llama.modeling_llama import LlamaMLP, LlamaRMSNorm
from transformers.models.phi3.modeling_phi3 import apply_rotary_pos_emb as phi3_rotary

from liger_kernel.transformers import (
    AutoLigerKernelForCausalLM,
    LigerCrossEntropyLoss,
    LigerFusedAddRMSNorm,
    LigerFusedLinearCrossEntropyLoss,
    LigerLayerNorm,
    LigerRMSNorm,
    LigerSwiGLUMLP,
    liger_rotary_pos_emb,
)
from liger_kernel.transformers import functional as LF
from liger_kernel.transformers.rms_norm import LigerRMSNormForGemma

TOL = dict(rtol=1e-5, atol=1e-5)


def _grads(module_or_fn, *inputs):
    out = module_or_fn(*inputs)
    out.pow(2).sum().backward()
    return out


def test_rms_norm_matches_llama():
    x = torch.randn(3, 5, 16, requires_grad=True)
    ref, ours = LlamaRMSNorm(16, eps=1e-5), LigerRMSNorm(16, eps=1e-5)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ours.weight.copy_(ref.weight)
    x2 = x.detach().clone().requires_grad_()
    torch.testing.assert_close(_grads(ours, x2), _grads(ref, x), **TOL)
    torch.testing.assert_close(x2.grad, x.grad, **TOL)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, **TOL)


def test_gemma_rms_norm_is_offset_by_one():
    ref, ours = GemmaRMSNorm(16), LigerRMSNormForGemma(16)
    assert torch.equal(ours.weight, torch.zeros(16)) and ours.offset == 1.0 and ours.casting_mode == "gemma"
    with torch.no_grad():
        ref.weight.normal_()
        ours.weight.copy_(ref.weight)
    x = torch.randn(4, 16)
    torch.testing.assert_close(ours(x), ref(x), **TOL)


def test_swiglu_mlp_matches_llama_and_loads_its_state_dict():
    config = tiny_config("llama")
    ref = LlamaMLP(config)
    ours = LigerSwiGLUMLP(config)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, config.hidden_size)
    with count_op_calls() as calls:
        got = ours(x)
    assert calls["swiglu"] == 1
    torch.testing.assert_close(got, ref(x), **TOL)


def test_swiglu_mlp_refuses_other_activations():
    config = tiny_config("llama")
    config.hidden_act = "gelu"
    with pytest.raises(ValueError, match="silu"):
        LigerSwiGLUMLP(config)


def test_partial_rotary_matches_phi3():
    q, k = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 6, 8)
    angles = torch.randn(1, 6, 2)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()  # rotary dim 4 of 8
    for got, want in zip(liger_rotary_pos_emb(q, k, cos, sin), phi3_rotary(q, k, cos, sin)):
        torch.testing.assert_close(got, want, **TOL)


def test_cross_entropy_module_and_extras():
    logits = torch.randn(10, 7)
    target = torch.randint(0, 7, (10,))
    target[2] = -100
    torch.testing.assert_close(LigerCrossEntropyLoss()(logits, target), F.cross_entropy(logits, target), **TOL)
    out = LigerCrossEntropyLoss(lse_square_scale=1e-2, return_z_loss=True)(logits, target)
    loss, z_loss = out.loss, out.z_loss
    assert out.token_accuracy is None and out.predicted_tokens is None
    kept = target != -100
    expected_z = 1e-2 * torch.logsumexp(logits[kept], -1).pow(2).mean()
    torch.testing.assert_close(z_loss, expected_z, **TOL)
    torch.testing.assert_close(loss, F.cross_entropy(logits, target) + expected_z, **TOL)


def test_fused_linear_cross_entropy_module_with_bias():
    x = torch.randn(9, 8, requires_grad=True)
    weight = torch.randn(11, 8, requires_grad=True)
    bias = torch.randn(11, requires_grad=True)
    target = torch.randint(0, 11, (9,))
    got = LigerFusedLinearCrossEntropyLoss(reduction="sum")(weight, x, target, bias)
    want = F.cross_entropy(F.linear(x, weight, bias), target, reduction="sum")
    torch.testing.assert_close(got, want, **TOL)
    (dx, dw, db) = torch.autograd.grad(got, (x, weight, bias))
    (ex, ew, eb) = torch.autograd.grad(want, (x, weight, bias))
    for a, b in ((dx, ex), (dw, ew), (db, eb)):
        torch.testing.assert_close(a, b, **TOL)


def test_layer_norm_and_fused_add_rms_norm():
    x, r = torch.randn(4, 16), torch.randn(4, 16)
    ln = LigerLayerNorm(16, eps=1e-5, bias=True)
    torch.testing.assert_close(ln(x), F.layer_norm(x, (16,), ln.weight, ln.bias, 1e-5), **TOL)
    normed, residual = LigerFusedAddRMSNorm(16, eps=1e-6)(x, r)
    torch.testing.assert_close(residual, x + r, **TOL)
    torch.testing.assert_close(normed, LigerRMSNorm(16, eps=1e-6)(x + r), **TOL)


def test_functional_api_routes_through_the_ops():
    a, b = torch.randn(3, 8), torch.randn(3, 8)
    with count_op_calls() as calls:
        torch.testing.assert_close(LF.liger_swiglu(a, b), F.silu(a) * b, **TOL)
        torch.testing.assert_close(LF.liger_geglu(a, b), F.gelu(a, approximate="tanh") * b, **TOL)
        loss = LF.liger_cross_entropy(a, torch.tensor([1, 2, 3]))
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0
    assert calls == {"swiglu": 1, "geglu": 1, "cross_entropy": 1}


def test_auto_model_patches_by_model_type():
    model = AutoLigerKernelForCausalLM.from_config(tiny_config("qwen2"), swiglu=False)
    assert any(isinstance(m, LigerRMSNorm) for m in model.modules())
    assert not any(isinstance(m, LigerSwiGLUMLP) for m in model.modules())
    assert type(build("qwen2").model.norm) is LigerRMSNorm  # class-level patch persists


def test_missing_transformers_is_a_clear_import_error(monkeypatch):
    monkey_patch = importlib.import_module("liger_kernel.transformers.monkey_patch")
    real_import = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError("No module named 'transformers'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    with pytest.raises(ImportError, match=r"pip install 'liger-kernel\[transformers\]'"):
        monkey_patch._require_transformers()
