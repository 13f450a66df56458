"""Every patched family against stock Transformers, on the CPU (torch backend)."""

from __future__ import annotations

import copy
import importlib
import inspect

import pytest
import torch
from tiny_models import FAMILIES, batch, build, count_op_calls, tiny_config

from liger_kernel.transformers import (
    MODEL_TYPE_TO_APPLY_LIGER_FN,
    LigerGEGLUMLP,
    LigerRMSNorm,
    LigerSwiGLUMLP,
    _apply_liger_kernel,
    _apply_liger_kernel_to_instance,
)
from liger_kernel.transformers.model.causal_lm import causal_lm_forward, moe_causal_lm_forward
from liger_kernel.transformers.monkey_patch import FAMILIES as PATCH_FAMILIES

STEPS = 3
TOL = dict(rtol=1e-4, atol=2e-5)

MOE = {"mixtral", "qwen3_moe"}


def _modeling(family: str):
    return importlib.import_module(PATCH_FAMILIES[family].module)


def _train(model, steps: int = STEPS) -> list[tuple[float, dict[str, torch.Tensor]]]:
    """Loss and gradients of each of ``steps`` SGD steps on fixed batches."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    history = []
    for step in range(steps):
        optimizer.zero_grad()
        loss = model(**batch(seed=step)).loss
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        history.append((loss.item(), grads))
        optimizer.step()
    return history


def _all_kwargs(family: str) -> dict[str, bool]:
    """Every op switch the family can take on, with the fused loss (granite
    defaults to plain CE); RoPE off where the family's is not Liger's (GLM-4)."""
    switch = PATCH_FAMILIES[family].mlp_switch
    rope = PATCH_FAMILIES[family].liger_rope
    return {"rope": rope, "rms_norm": True, switch: True, "cross_entropy": False, "fused_linear_cross_entropy": True}


def test_every_family_has_a_patch_function():
    assert set(MODEL_TYPE_TO_APPLY_LIGER_FN) == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_patched_classes_train_like_stock(family):
    stock = build(family)
    MODEL_TYPE_TO_APPLY_LIGER_FN[family](**_all_kwargs(family))
    patched = build(family, seed=1)
    patched.load_state_dict(stock.state_dict())

    norms = [m for m in patched.modules() if isinstance(m, LigerRMSNorm)]
    assert len(norms) >= 2 * tiny_config(family).num_hidden_layers + 1
    if family != "mixtral":
        assert any(type(m) is PATCH_FAMILIES[family].liger_mlp for m in patched.modules())
    expected_forward = moe_causal_lm_forward if family in MOE else causal_lm_forward
    assert type(patched).forward is expected_forward

    with count_op_calls() as calls:
        patched_history = _train(patched)
    stock_history = _train(stock)
    assert calls["rms_norm"] and calls["fused_linear_cross_entropy"]
    assert bool(calls["rope"]) is PATCH_FAMILIES[family].liger_rope
    assert calls[PATCH_FAMILIES[family].mlp_switch]

    for (stock_loss, stock_grads), (patched_loss, patched_grads) in zip(stock_history, patched_history):
        assert patched_loss == pytest.approx(stock_loss, rel=1e-5)
        assert stock_grads.keys() == patched_grads.keys()
        for name, grad in stock_grads.items():
            torch.testing.assert_close(patched_grads[name], grad, **TOL, msg=lambda m, n=name: f"{n}: {m}")
    # the optimizer steps changed the weights, and equally
    for name, value in stock.state_dict().items():
        torch.testing.assert_close(patched.state_dict()[name], value, **TOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_instance_patching_converts_modules_and_keeps_weights(family):
    model = build(family)
    reference = copy.deepcopy(model)
    modeling = _modeling(family)
    spec = PATCH_FAMILIES[family]
    stock_norm = getattr(modeling, spec.rms_norm)
    stock_mlp = getattr(modeling, spec.mlp) if spec.mlp else None
    n_norms = sum(type(m) is stock_norm for m in model.modules())
    n_mlps = sum(type(m) is stock_mlp for m in model.modules()) if stock_mlp else 0
    params = {name: p for name, p in model.named_parameters()}
    hooked = []
    final_norm = getattr(model.model, "norm", None) or model.model.final_layernorm  # Falcon-H1's name
    final_norm.register_forward_hook(lambda *_: hooked.append(True))

    _apply_liger_kernel_to_instance(model=model, **_all_kwargs(family))

    assert not any(type(m) is stock_norm for m in model.modules())
    assert sum(type(m) is spec.liger_rms_norm for m in model.modules()) == n_norms
    if stock_mlp is not None:
        assert sum(type(m) is spec.liger_mlp for m in model.modules()) == n_mlps > 0
    # the very same parameter objects, under the same names
    assert {name: p for name, p in model.named_parameters()} == params
    assert model.state_dict().keys() == reference.state_dict().keys()

    data = batch()
    model.eval()
    reference.eval()
    with torch.no_grad():
        expected = reference(**data)
        with count_op_calls() as calls:
            got = model(**data)
    torch.testing.assert_close(got.logits, expected.logits, **TOL)
    assert hooked, "hooks registered on a converted module must survive the conversion"
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)
    assert calls["rms_norm"] >= n_norms
    assert bool(calls["rope"]) is spec.liger_rope


@pytest.mark.parametrize("family", FAMILIES)
def test_revert_restores_stock_transformers(family):
    modeling = _modeling(family)
    spec = PATCH_FAMILIES[family]
    before = {name: getattr(modeling, name) for name in ("apply_rotary_pos_emb", spec.rms_norm, spec.mlp) if name}
    causal_lm = getattr(modeling, spec.causal_lm)
    forward = causal_lm.forward
    _apply_liger_kernel(family, **_all_kwargs(family))
    assert (modeling.apply_rotary_pos_emb is not before["apply_rotary_pos_emb"]) is spec.liger_rope
    assert causal_lm.forward is not forward

    from liger_kernel.transformers import revert_liger_kernel_patches

    revert_liger_kernel_patches()
    assert {name: getattr(modeling, name) for name in before} == before
    assert causal_lm.forward is forward
    model = build(family)
    assert not any(isinstance(m, LigerRMSNorm) for m in model.modules())
    with count_op_calls() as calls:
        model(**batch())
    assert not calls


def test_granite_defaults_to_plain_cross_entropy():
    stock = build("granite")
    patched = copy.deepcopy(stock)
    _apply_liger_kernel_to_instance(model=patched)
    data = batch()
    with count_op_calls() as calls:
        loss = patched(**data).loss
    assert calls["cross_entropy"] == 1 and not calls["fused_linear_cross_entropy"]
    assert loss.item() == pytest.approx(stock(**data).loss.item(), rel=1e-5)


def test_glm4_rope_stays_stock(caplog):
    """GLM-4 rotates interleaved pairs: rope defaults to False, and rope=True
    is refused with a warning rather than patched in."""
    from liger_kernel.transformers import apply_liger_kernel_to_glm4

    assert inspect.signature(apply_liger_kernel_to_glm4).parameters["rope"].default is False
    modeling = _modeling("glm4")
    stock_rope = modeling.apply_rotary_pos_emb
    apply_liger_kernel_to_glm4(rope=True)
    assert modeling.apply_rotary_pos_emb is stock_rope
    assert "rope=True is ignored" in caplog.text


def test_cross_entropy_and_fused_are_exclusive():
    from liger_kernel.transformers import apply_liger_kernel_to_llama

    with pytest.raises(ValueError, match="cannot both be True"):
        apply_liger_kernel_to_llama(cross_entropy=True, fused_linear_cross_entropy=True)


def test_instance_patch_passes_on_only_accepted_kwargs():
    model = build("gemma")
    # swiglu is not a gemma switch, so it is dropped; geglu=False keeps the stock MLP
    _apply_liger_kernel_to_instance(model=model, swiglu=True, geglu=False)
    assert not any(isinstance(m, LigerGEGLUMLP) for m in model.modules())
    assert any(isinstance(m, LigerRMSNorm) for m in model.modules())


def test_unknown_model_type_is_left_alone(caplog):
    model = torch.nn.Linear(2, 2)
    _apply_liger_kernel_to_instance(model=model)
    assert "has no Liger patch" in caplog.text


@pytest.fixture
def registry(monkeypatch):
    """The patch-function registry, restored after the test."""
    from liger_kernel.transformers import monkey_patch

    monkeypatch.setattr(monkey_patch, "MODEL_TYPE_TO_APPLY_LIGER_FN", dict(monkey_patch.MODEL_TYPE_TO_APPLY_LIGER_FN))
    monkeypatch.setattr(monkey_patch, "PATCH_FUNCTIONS", dict(monkey_patch.PATCH_FUNCTIONS))
    return monkey_patch


def test_hand_written_patch_function_hook(registry, monkeypatch):
    """A family outside the table: its own switches, the table's decoder patch for the rest."""
    calls = []
    monkeypatch.setattr(registry, "apply_liger_kernel_to_hybrid", None, raising=False)  # removed afterwards

    @registry.patch_function("hybrid", "hybrid_text")
    def apply_liger_kernel_to_hybrid(
        rope: bool = True, rms_norm: bool = True, layer_norm: bool = True, model: torch.nn.Module | None = None
    ) -> None:
        calls.append({"rope": rope, "rms_norm": rms_norm, "layer_norm": layer_norm})
        registry._patch(registry.FAMILIES["llama"], rope, False, False, rms_norm, False, model)

    assert registry.MODEL_TYPE_TO_APPLY_LIGER_FN["hybrid"] is apply_liger_kernel_to_hybrid
    assert registry.MODEL_TYPE_TO_APPLY_LIGER_FN["hybrid_text"] is apply_liger_kernel_to_hybrid
    assert registry.apply_liger_kernel_to_hybrid is apply_liger_kernel_to_hybrid

    model = build("llama")
    model.config.model_type = "hybrid_text"
    # swiglu is not one of its switches: dropped, as for a generated function
    _apply_liger_kernel_to_instance(model=model, rope=False, swiglu=True, layer_norm=False)
    assert calls == [{"rope": False, "rms_norm": True, "layer_norm": False}]
    assert type(model.model.norm) is LigerRMSNorm
    assert not any(isinstance(m, LigerSwiGLUMLP) for m in model.modules())


def test_patch_function_hook_refuses_loose_signatures_and_duplicates(registry):
    def apply_liger_kernel_to_loose(model=None, **switches):
        pass

    with pytest.raises(TypeError, match="explicit keyword parameters"):
        registry.patch_function("loose")(apply_liger_kernel_to_loose)

    def apply_liger_kernel_to_no_model(rope: bool = True) -> None:
        pass

    with pytest.raises(TypeError, match="no model"):
        registry.patch_function("no_model")(apply_liger_kernel_to_no_model)

    def apply_liger_kernel_to_llama2(rope: bool = True, model=None) -> None:
        pass

    with pytest.raises(ValueError, match=r"\['llama'\] already registered"):
        registry.patch_function("llama")(apply_liger_kernel_to_llama2)
    assert "loose" not in registry.MODEL_TYPE_TO_APPLY_LIGER_FN


def test_a_table_row_is_a_whole_family():
    """Every generated function patches exactly what its row names."""
    for family, spec in PATCH_FAMILIES.items():
        function = MODEL_TYPE_TO_APPLY_LIGER_FN[family]
        assert function.__name__ == f"apply_liger_kernel_to_{family}" == spec.function_name
        assert spec.mlp_switch in inspect.signature(function).parameters
        modeling = _modeling(family)
        for name in (spec.causal_lm, spec.rms_norm, spec.mlp):
            assert name is None or hasattr(modeling, name), f"{spec.module} has no {name}"
