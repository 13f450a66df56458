"""MuseGlimmer (a vision-language model, patched by a hand-written function)
against stock Transformers on a tiny random model with an image, on the CPU;
and the RMSNorm variants of MuseGlimmer and Qwen3-Next against the Transformers
modules they replace."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from tiny_models import build_multimodal, count_op_calls, image_batch

pytest.importorskip("transformers.models.muse_glimmer")

from transformers.models.muse_glimmer import modeling_muse_glimmer as modeling
from transformers.models.qwen3_next import modeling_qwen3_next

from liger_kernel.transformers import (
    LigerRMSNormForMuseGlimmer,
    LigerRMSNormForMuseGlimmerTextCentered,
    LigerSwiGLUMLPForMuseGlimmer,
    _apply_liger_kernel_to_instance,
    apply_liger_kernel_to_muse_glimmer,
    revert_liger_kernel_patches,
)
from liger_kernel.transformers.layer_norm import LigerLayerNorm
from liger_kernel.transformers.model import muse_glimmer as muse_glimmer_module
from liger_kernel.transformers.model.output_classes import LigerMuseGlimmerCausalLMOutputWithPast
from liger_kernel.transformers.rms_norm import LigerRMSNormForQwen3Next

TOL = dict(rtol=1e-4, atol=2e-5)
FAMILY = "muse_glimmer"
# per forward: 4 centered norms x 2 layers; final norm; q and k norms x 2 layers; embedding and image-feature norms
RMS_NORMS = 8 + 1 + 4 + 2
# per forward: 2 encoder layers x 2, ln_pre, ln_post
LAYER_NORMS = 6


def _train(model, steps: int = 3):
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    history = []
    for step in range(steps):
        optimizer.zero_grad()
        loss = model(**image_batch(seed=step)).loss
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        history.append((loss.item(), grads))
        optimizer.step()
    return history


def _assert_same_training(stock_history, patched_history):
    for (stock_loss, stock_grads), (patched_loss, patched_grads) in zip(stock_history, patched_history):
        assert patched_loss == pytest.approx(stock_loss, rel=1e-5)
        assert stock_grads.keys() == patched_grads.keys()
        for name, grad in stock_grads.items():
            torch.testing.assert_close(patched_grads[name], grad, **TOL, msg=lambda m, n=name: f"{n}: {m}")


def test_patched_classes_train_like_stock():
    stock = build_multimodal(FAMILY)
    apply_liger_kernel_to_muse_glimmer()
    patched = build_multimodal(FAMILY, seed=1)
    patched.load_state_dict(stock.state_dict())

    text = patched.model.language_model
    assert type(patched).forward is muse_glimmer_module.lce_forward
    assert type(text.layers[0].input_layernorm) is LigerRMSNormForMuseGlimmerTextCentered
    assert type(text.norm) is type(text.layers[0].self_attn.qk_norm) is LigerRMSNormForMuseGlimmer
    assert text.layers[0].self_attn.qk_norm.weight is None
    assert type(text.layers[0].mlp) is LigerSwiGLUMLPForMuseGlimmer
    assert type(patched.model.vision_tower.ln_pre) is LigerLayerNorm
    assert type(patched.model.vision_tower.layers[1].norm2) is LigerLayerNorm

    with count_op_calls() as calls:
        patched_history = _train(patched)
    stock_history = _train(stock)
    assert calls["fused_linear_cross_entropy"] == 3 and not calls["cross_entropy"]
    assert calls["rms_norm"] == 3 * RMS_NORMS and calls["layer_norm"] == 3 * LAYER_NORMS
    assert calls["rope"] == 3  # layer 1 is a NoPE layer
    assert calls["swiglu"] == 3 * 2
    _assert_same_training(stock_history, patched_history)
    for name, value in stock.state_dict().items():
        torch.testing.assert_close(patched.state_dict()[name], value, **TOL)


def test_instance_patching_converts_modules_and_keeps_weights():
    model = build_multimodal(FAMILY)
    reference = copy.deepcopy(model)
    params = dict(model.named_parameters())
    norms = sum(
        type(m) in (modeling.MuseGlimmerRMSNorm, modeling.MuseGlimmerTextCenteredRMSNorm) for m in model.modules()
    )

    _apply_liger_kernel_to_instance(model=model)

    assert sum(isinstance(m, LigerRMSNormForMuseGlimmer | LigerRMSNormForQwen3Next) for m in model.modules()) == norms
    assert not any(type(m) is torch.nn.LayerNorm for m in model.modules())
    assert sum(type(m) is LigerSwiGLUMLPForMuseGlimmer for m in model.modules()) == 2
    assert dict(model.named_parameters()) == params
    assert model.state_dict().keys() == reference.state_dict().keys()

    data = image_batch()
    model.eval()
    reference.eval()
    with torch.no_grad():
        expected = reference(**data)
        with count_op_calls() as calls:
            got = model(**data)
    assert isinstance(got, LigerMuseGlimmerCausalLMOutputWithPast)
    # evaluation: the logits as the stock head forms them (multiplier, softcap)
    torch.testing.assert_close(got.logits, expected.logits, **TOL)
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)
    assert got.image_outputs.pooler_output[0].shape == expected.image_outputs.pooler_output[0].shape
    assert calls["rms_norm"] == RMS_NORMS and calls["layer_norm"] == LAYER_NORMS and calls["rope"] == 1

    # training on the converted model: the fused loss, same loss and gradients
    _assert_same_training(_train(reference), _train(model))


def test_plain_cross_entropy_and_switches_off():
    stock = build_multimodal(FAMILY)
    apply_liger_kernel_to_muse_glimmer(
        rope=False, layer_norm=False, swiglu=False, cross_entropy=True, fused_linear_cross_entropy=False
    )
    patched = build_multimodal(FAMILY, seed=1)
    patched.load_state_dict(stock.state_dict())
    assert type(patched).forward is type(stock).forward
    assert type(patched.model.vision_tower.ln_pre) is torch.nn.LayerNorm
    with count_op_calls() as calls:
        patched_history = _train(patched)
    assert calls["cross_entropy"] == 3 and calls["rms_norm"] == 3 * RMS_NORMS
    assert not (calls["rope"] or calls["swiglu"] or calls["layer_norm"] or calls["fused_linear_cross_entropy"])
    _assert_same_training(_train(stock), patched_history)


def test_revert_restores_stock_transformers():
    before = {
        name: getattr(modeling, name)
        for name in (
            "apply_rotary_pos_emb",
            "MuseGlimmerRMSNorm",
            "MuseGlimmerTextCenteredRMSNorm",
            "MuseGlimmerTextMLP",
        )
    }
    forward = modeling.MuseGlimmerForConditionalGeneration.forward
    init = modeling.MuseGlimmerVisionModel.__init__
    apply_liger_kernel_to_muse_glimmer()
    apply_liger_kernel_to_muse_glimmer()  # twice: still one layer of patching
    assert modeling.MuseGlimmerVisionModel.__init__.__wrapped__ is init
    revert_liger_kernel_patches()
    assert {name: getattr(modeling, name) for name in before} == before
    assert modeling.MuseGlimmerForConditionalGeneration.forward is forward
    assert modeling.MuseGlimmerVisionModel.__init__ is init
    model = build_multimodal(FAMILY)
    with count_op_calls() as calls:
        model(**image_batch())
    assert not calls


def test_lce_forward_on_a_stock_model_is_the_patched_forward():
    parameters = list(inspect.signature(muse_glimmer_module.lce_forward).parameters)
    assert parameters[:6] == [
        "self",
        "input_ids",
        "pixel_values",
        "image_grid_thw",
        "pixel_values_videos",
        "video_grid_thw",
    ]
    assert "past_key_values" in parameters and "skip_logits" in parameters
    stock = build_multimodal(FAMILY)
    stock.train()
    data = image_batch()
    with count_op_calls() as calls:
        got = muse_glimmer_module.lce_forward(stock, **data)
    assert calls["fused_linear_cross_entropy"] == 1 and got.logits is None
    expected = type(stock).forward(stock, **data)
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)


def test_lce_forward_options_and_cache():
    model = build_multimodal(FAMILY)
    model.eval()
    data = image_batch()
    with torch.no_grad():
        options = muse_glimmer_module.lce_forward(model, **data, skip_logits=True, return_token_accuracy=True)
        assert options.logits is None and 0.0 <= options.token_accuracy.item() <= 1.0
        whole = model(**data).logits
        inputs = {"input_ids": data["input_ids"][:, :8], "pixel_values": data["pixel_values"]}
        first = muse_glimmer_module.lce_forward(model, **inputs, image_grid_thw=data["image_grid_thw"], use_cache=True)
        cache = getattr(first, "cache", None) or first.past_key_values
        rest = muse_glimmer_module.lce_forward(
            model, input_ids=data["input_ids"][:, 8:], past_key_values=cache, use_cache=True
        )
    torch.testing.assert_close(rest.logits, whole[:, 8:], rtol=1e-4, atol=1e-5)


def _stock_and_liger_norms():
    rows = [
        (modeling.MuseGlimmerRMSNorm(16, eps=1e-5), LigerRMSNormForMuseGlimmer(16, eps=1e-5)),
        (
            modeling.MuseGlimmerRMSNorm(eps=1e-5, with_scale=False),
            LigerRMSNormForMuseGlimmer(eps=1e-5, with_scale=False),
        ),
        (
            modeling.MuseGlimmerTextCenteredRMSNorm(16, eps=1e-5),
            LigerRMSNormForMuseGlimmerTextCentered(16, eps=1e-5),
        ),
        (modeling_qwen3_next.Qwen3NextRMSNorm(16, eps=1e-5), LigerRMSNormForQwen3Next(16, eps=1e-5)),
    ]
    return rows


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_norms_match_the_transformers_modules(index, dtype):
    stock, liger = _stock_and_liger_norms()[index]
    assert dict(stock.named_parameters()).keys() == dict(liger.named_parameters()).keys()
    if liger.weight is not None:
        assert torch.equal(liger.weight, stock.weight)  # the same initialisation
        with torch.no_grad():
            stock.weight.normal_(generator=torch.Generator().manual_seed(1))
            liger.weight.copy_(stock.weight)
    x = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(0)).to(dtype)
    x_stock, x_liger = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_stock, y_liger = stock(x_stock), liger(x_liger)
    tol = {} if dtype is torch.float32 else dict(rtol=1.6e-2, atol=1e-2)
    torch.testing.assert_close(y_liger, y_stock, **tol)
    grad = torch.randn_like(y_stock)
    y_stock.backward(grad)
    y_liger.backward(grad)
    torch.testing.assert_close(x_liger.grad, x_stock.grad, **tol)
    if liger.weight is not None:
        torch.testing.assert_close(liger.weight.grad, stock.weight.grad, **tol)


def test_norm_defaults_are_0_8_5s():
    assert LigerRMSNormForQwen3Next(8).in_place is False and LigerRMSNormForQwen3Next(8).offset == 1.0
    assert LigerRMSNormForMuseGlimmerTextCentered(8).in_place is False
    assert LigerRMSNormForMuseGlimmer(8).with_scale is True
    assert not list(LigerRMSNormForMuseGlimmer(with_scale=False).parameters())
    with pytest.raises(ValueError, match="needs dim"):
        LigerRMSNormForMuseGlimmer()
