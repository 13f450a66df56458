"""Every patched family against stock Transformers, on the CPU (torch backend)."""

from __future__ import annotations

import copy
import importlib
import inspect

import pytest
import torch
from tiny_models import (
    FAMILIES,
    HAND_WRITTEN,
    LEARNING_RATES,
    MULTIMODAL,
    TEXT_MODEL_TYPES,
    batch,
    build,
    count_op_calls,
    tiny_config,
)

from liger_kernel.transformers import (
    MODEL_TYPE_TO_APPLY_LIGER_FN,
    LigerGEGLUMLP,
    LigerRMSNorm,
    LigerSwiGLUMLP,
    _apply_liger_kernel,
    _apply_liger_kernel_to_instance,
)
from liger_kernel.transformers.layer_norm import LigerLayerNorm
from liger_kernel.transformers.model.causal_lm import causal_lm_forward, moe_causal_lm_forward
from liger_kernel.transformers.monkey_patch import FAMILIES as PATCH_FAMILIES

STEPS = 3
TOL = dict(rtol=1e-4, atol=2e-5)

MOE = {family for family, spec in PATCH_FAMILIES.items() if spec.moe}
#: the op a family's MLP switch routes to, where it is not the switch's name
GATE_OPS = {"gpt_oss": "clamped_swiglu"}


def _modeling(family: str):
    return importlib.import_module(PATCH_FAMILIES[family].module)


def _train(model, steps: int = STEPS, lr: float = 0.5) -> list[tuple[float, dict[str, torch.Tensor]]]:
    """Loss and gradients of each of ``steps`` SGD steps on fixed batches."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
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
    defaults to plain CE); RoPE off where the family's is not Liger's (GLM-4,
    DeepSeek), the MLP off where its activation is not (DeepSeek-V4)."""
    spec = PATCH_FAMILIES[family]
    return {
        "rope": spec.liger_rope,
        "rms_norm": True,
        spec.mlp_switch: spec.liger_activation,
        "cross_entropy": False,
        "fused_linear_cross_entropy": True,
    }


def test_every_family_has_a_patch_function():
    assert set(MODEL_TYPE_TO_APPLY_LIGER_FN) == set(FAMILIES) | set(MULTIMODAL) | set(HAND_WRITTEN) | set(
        TEXT_MODEL_TYPES.values()
    )
    for family, text_model_type in TEXT_MODEL_TYPES.items():
        assert PATCH_FAMILIES[family].text_model_type == text_model_type
        assert MODEL_TYPE_TO_APPLY_LIGER_FN[text_model_type] is MODEL_TYPE_TO_APPLY_LIGER_FN[family]


@pytest.mark.parametrize("family", FAMILIES)
def test_patched_classes_train_like_stock(family):
    stock = build(family)
    MODEL_TYPE_TO_APPLY_LIGER_FN[family](**_all_kwargs(family))
    patched = build(family, seed=1)
    patched.load_state_dict(stock.state_dict())

    norms = [m for m in patched.modules() if isinstance(m, LigerRMSNorm)]
    assert len(norms) >= 2 * tiny_config(family).num_hidden_layers + 1
    if PATCH_FAMILIES[family].liger_mlp is not None:  # Mixtral and GPT-OSS have experts only
        assert any(type(m) is PATCH_FAMILIES[family].liger_mlp for m in patched.modules())
    assert type(patched).forward is PATCH_FAMILIES[family].lm_forward()

    with count_op_calls() as calls:
        patched_history = _train(patched, lr=LEARNING_RATES.get(family, 0.5))
    stock_history = _train(stock, lr=LEARNING_RATES.get(family, 0.5))
    assert calls["rms_norm"] and calls["fused_linear_cross_entropy"]
    assert bool(calls[PATCH_FAMILIES[family].rope_op]) is PATCH_FAMILIES[family].liger_rope
    spec = PATCH_FAMILIES[family]
    if spec.liger_mlp is not None:
        assert bool(calls[spec.mlp_switch]) is spec.liger_activation
    if family in GATE_OPS:  # experts of another computation: only their gate is an op
        assert calls[GATE_OPS[family]] and not calls["fused_moe"]
    elif family in MOE:
        assert bool(calls["fused_moe"]) is spec.liger_activation

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
    assert bool(calls[spec.rope_op]) is spec.liger_rope


@pytest.mark.parametrize("family", FAMILIES)
def test_revert_restores_stock_transformers(family):
    modeling = _modeling(family)
    spec = PATCH_FAMILIES[family]
    # DeepSeek-V2 names its rotary function otherwise: no such function (None) before or after
    before = {name: getattr(modeling, name, None) for name in (spec.rope_function, spec.rms_norm, spec.mlp) if name}
    causal_lm = getattr(modeling, spec.causal_lm)
    forward = causal_lm.forward
    _apply_liger_kernel(family, **_all_kwargs(family))
    assert (getattr(modeling, spec.rope_function, None) is not before[spec.rope_function]) is spec.liger_rope
    assert causal_lm.forward is not forward

    from liger_kernel.transformers import revert_liger_kernel_patches

    revert_liger_kernel_patches()
    assert {name: getattr(modeling, name, None) for name in before} == before
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


def _module_functions(modeling) -> dict[str, object]:
    return {name: value for name, value in vars(modeling).items() if inspect.isfunction(value)}


@pytest.mark.parametrize("family", ["deepseek_v2", "deepseek_v3", "deepseek_v4"])
def test_deepseek_rope_stays_stock(family, caplog):
    """DeepSeek's MLA rotates interleaved pairs: rope defaults to False (as in
    0.8.5), and rope=True leaves every function of the module stock, warning."""
    function = MODEL_TYPE_TO_APPLY_LIGER_FN[family]
    assert inspect.signature(function).parameters["rope"].default is False
    modeling = _modeling(family)
    functions = _module_functions(modeling)
    function(rope=True)
    assert _module_functions(modeling) == functions
    assert "rope=True is ignored" in caplog.text
    model = build(family)
    with count_op_calls() as calls:
        model(**batch())
    assert not calls["rope"] and calls["rms_norm"]


def test_deepseek_v4_clamped_experts_stay_stock(caplog):
    """DeepSeek-V4 clamps gate and up by swiglu_limit in its shared and routed
    experts: swiglu defaults to False, and swiglu=True keeps them stock (with a
    limit the activations reach, so a SwiGLU patched in would differ)."""
    import transformers

    from liger_kernel.transformers import apply_liger_kernel_to_deepseek_v4

    assert inspect.signature(apply_liger_kernel_to_deepseek_v4).parameters["swiglu"].default is False
    modeling = _modeling("deepseek_v4")
    apply_gate, mlp_forward = modeling.DeepseekV4Experts._apply_gate, modeling.DeepseekV4MLP.forward

    config = tiny_config("deepseek_v4")
    config.swiglu_limit = 0.05

    def clamped_model():
        torch.manual_seed(0)
        return transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager").float().eval()

    stock = clamped_model()
    data = batch()
    expected = stock(**data)
    apply_liger_kernel_to_deepseek_v4(swiglu=True)
    assert "swiglu=True is ignored" in caplog.text
    assert modeling.DeepseekV4Experts._apply_gate is apply_gate and modeling.DeepseekV4MLP.forward is mlp_forward
    patched = clamped_model()
    with count_op_calls() as calls:
        got = patched(**data)
    assert not calls["swiglu"] and calls["rms_norm"]
    torch.testing.assert_close(got.logits, expected.logits, **TOL)
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)
    torch.testing.assert_close(got.aux_loss, expected.aux_loss)


def test_deepseek_v4_norm_multiplies_its_fp32_weight_before_casting():
    """DeepSeek-V4 keeps its norm weights in fp32 in a bf16 model and casts
    once after the weight: its Liger norm matches that, in bf16 too (the Llama
    casting, rounding before the weight, would not)."""
    modeling = _modeling("deepseek_v4")
    spec = PATCH_FAMILIES["deepseek_v4"]
    torch.manual_seed(0)
    weight = torch.randn(32)
    x = torch.randn(3, 5, 32, dtype=torch.bfloat16, requires_grad=True)
    stock = getattr(modeling, spec.rms_norm)(32, eps=1e-6)
    liger = spec.liger_rms_norm(32, eps=1e-6)
    with torch.no_grad():
        stock.weight.copy_(weight)
        liger.weight.copy_(weight)
    expected, got = stock(x), liger(x)
    assert got.dtype is expected.dtype is torch.bfloat16
    torch.testing.assert_close(got, expected)
    g = torch.randn_like(expected)
    (expected_dx, expected_dw), (dx, dw) = (
        torch.autograd.grad(y, (x, n.weight), g) for y, n in ((expected, stock), (got, liger))
    )
    torch.testing.assert_close(dx, expected_dx, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(dw, expected_dw, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("family", ["hunyuan_v1_moe", "deepseek_v2", "deepseek_v3"])
def test_moe_family_without_router_loss(family):
    """These families' stock forward adds no router loss (their modules define
    no load_balancing_loss_func); the patched MoE forward adds none either,
    and returns the router logits when asked for."""
    assert not hasattr(_modeling(family), "load_balancing_loss_func")
    stock = build(family)
    _apply_liger_kernel(family, **_all_kwargs(family))
    patched = build(family, seed=1)
    patched.load_state_dict(stock.state_dict())
    assert type(patched).forward is moe_causal_lm_forward
    data = batch()
    got = patched(**data, output_router_logits=True)
    expected = stock(**data, output_router_logits=True)
    assert got.aux_loss is None and getattr(expected, "aux_loss", None) is None
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)
    assert len(got.router_logits) == len(expected.router_logits) > 0
    for mine, theirs in zip(got.router_logits, expected.router_logits):
        torch.testing.assert_close(mine, theirs, **TOL)


def test_llama4_text_parts_patched_and_left_stock():
    """Llama 4 text: the RoPE layer's q/k L2 norm and the MoE layer's shared
    expert are converted, the routed experts stay stock, NoPE layers make no
    RoPE call, and the router logits come out as the stock forward gives them
    (with no load-balancing loss, as stock)."""
    from liger_kernel.transformers.rms_norm import LigerL2NormForLlama4

    stock = build("llama4_text")
    model = copy.deepcopy(stock)
    _apply_liger_kernel_to_instance(model=model)
    rope_layer, moe_layer = model.model.layers
    assert type(rope_layer.self_attn.qk_norm) is LigerL2NormForLlama4
    assert not hasattr(moe_layer.self_attn, "qk_norm")  # the NoPE layer has none
    assert type(rope_layer.feed_forward) is LigerSwiGLUMLP and rope_layer.feed_forward.intermediate_size == 48
    assert type(moe_layer.feed_forward.shared_expert) is LigerSwiGLUMLP
    assert moe_layer.feed_forward.shared_expert.intermediate_size == 64
    assert type(moe_layer.feed_forward.experts) is _modeling("llama4_text").Llama4TextExperts

    data = batch()
    with torch.no_grad():
        expected = stock(**data, output_router_logits=True)
        with count_op_calls() as calls:
            got = model(**data, output_router_logits=True)
    assert calls["llama4_rope"] == 1 and calls["rope"] == 0
    # two norms per layer, the final norm, and the RoPE layer's q and k L2 norms
    assert calls["rms_norm"] == 2 * 2 + 1 + 2
    assert got.aux_loss is None and expected.loss is not None
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)
    assert len(got.router_logits) == len(expected.router_logits) == 1
    torch.testing.assert_close(got.router_logits[0], expected.router_logits[0], **TOL)


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


# -- Nemotron (a hand-written patch function: relu2 MLP, LayerNorm1P, partial RoPE)

NEMOTRON_OPS = ("relu_squared", "rope", "layer_norm", "fused_linear_cross_entropy")


def _nemotron(seed: int = 0):
    """A tiny Nemotron whose LayerNorm1P scales and biases are random (stock
    initialises them to 0, a scale of exactly 1), so the +1 is exercised."""
    model = build("nemotron", seed=seed)
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "layernorm" in name or name.startswith("model.norm"):
                parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
    return model


def _nemotron_modules(model):
    from liger_kernel.transformers import LigerReLUSquared
    from liger_kernel.transformers.layer_norm import LigerLayerNormForNemotron

    acts = [m for m in model.modules() if type(m) is LigerReLUSquared]
    norms = [m for m in model.modules() if type(m) is LigerLayerNormForNemotron]
    return acts, norms


def test_nemotron_patched_classes_train_like_stock():
    stock = _nemotron()
    MODEL_TYPE_TO_APPLY_LIGER_FN["nemotron"]()
    patched = build("nemotron", seed=1)
    patched.load_state_dict(stock.state_dict())
    layers = tiny_config("nemotron").num_hidden_layers
    acts, norms = _nemotron_modules(patched)
    assert len(acts) == layers and len(norms) == 2 * layers + 1
    assert type(patched).forward is causal_lm_forward

    with count_op_calls() as calls:
        patched_history = _train(patched)
    stock_history = _train(stock)
    for op in NEMOTRON_OPS:
        assert calls[op], f"{op} was not called"
    for (stock_loss, stock_grads), (patched_loss, patched_grads) in zip(stock_history, patched_history):
        assert patched_loss == pytest.approx(stock_loss, rel=1e-5)
        assert stock_grads.keys() == patched_grads.keys()
        for name, grad in stock_grads.items():
            torch.testing.assert_close(patched_grads[name], grad, **TOL, msg=lambda m, n=name: f"{n}: {m}")
    for name, value in stock.state_dict().items():
        torch.testing.assert_close(patched.state_dict()[name], value, **TOL)


# -- GPT-OSS: half-width RoPE tables, the clamped experts gate, swiglu off by default


def test_gpt_oss_rope_matches_transformers():
    """liger_rotary_pos_emb_gpt_oss against Transformers' own apply_rotary_pos_emb
    for GPT-OSS (half-width cos/sin from its rotary embedding), values and gradients."""
    from transformers.models.gpt_oss import modeling_gpt_oss

    from liger_kernel.transformers.rope import liger_rotary_pos_emb_gpt_oss

    config = tiny_config("gpt_oss")
    rotary = modeling_gpt_oss.GptOssRotaryEmbedding(config)
    torch.manual_seed(0)
    q = torch.randn(2, 4, 12, 8, requires_grad=True)
    k = torch.randn(2, 2, 12, 8, requires_grad=True)
    position_ids = torch.arange(3, 15).unsqueeze(0).expand(2, -1)
    cos, sin = rotary(q, position_ids)
    assert cos.shape == (2, 12, 4)  # half the head: what liger_rotary_pos_emb would take for partial rotary
    stock_q, stock_k = (t.detach().clone().requires_grad_(True) for t in (q, k))
    want = modeling_gpt_oss.apply_rotary_pos_emb(stock_q, stock_k, cos, sin)
    with count_op_calls() as calls:
        got = liger_rotary_pos_emb_gpt_oss(q, k, cos, sin)
    assert calls["rope"] == 1
    dq, dk = torch.randn_like(q), torch.randn_like(k)
    torch.autograd.backward(got, (dq, dk))
    torch.autograd.backward(want, (dq, dk))
    for a, b in ((got[0], want[0]), (got[1], want[1]), (q.grad, stock_q.grad), (k.grad, stock_k.grad)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_gpt_oss_swiglu_defaults_to_false_and_leaves_the_experts_stock():
    from transformers.models.gpt_oss import modeling_gpt_oss

    from liger_kernel.transformers import apply_liger_kernel_to_gpt_oss

    parameters = inspect.signature(apply_liger_kernel_to_gpt_oss).parameters
    assert {name: p.default for name, p in parameters.items()} == {
        "rope": True,
        "cross_entropy": False,
        "fused_linear_cross_entropy": True,
        "rms_norm": True,
        "swiglu": False,
        "model": None,
    }
    stock_gate = modeling_gpt_oss.GptOssExperts._apply_gate
    apply_liger_kernel_to_gpt_oss()
    assert modeling_gpt_oss.GptOssExperts._apply_gate is stock_gate
    with count_op_calls() as calls:
        build("gpt_oss")(**batch())
    assert calls["rope"] and calls["rms_norm"] and not calls["clamped_swiglu"]


@pytest.mark.parametrize("swiglu", [False, True], ids=["default", "swiglu"])
def test_gpt_oss_trains_like_stock(swiglu):
    """Stock GPT-OSS measured before anything is patched (the RoPE function and
    the experts' gate are class-level, so a stock model built earlier would take
    them too), then the patched one: losses with the router loss, and gradients."""
    from liger_kernel.transformers import apply_liger_kernel_to_gpt_oss

    stock = build("gpt_oss")
    state = copy.deepcopy(stock.state_dict())
    stock_history = _train(stock)

    apply_liger_kernel_to_gpt_oss(swiglu=swiglu)
    patched = build("gpt_oss", seed=1)
    patched.load_state_dict(state)
    data = batch()
    with count_op_calls() as calls:
        out = patched(**data)
    assert out.aux_loss is not None and out.logits is None
    assert calls["fused_linear_cross_entropy"] == 1 and calls["rope"] == 2 and calls["rms_norm"] == 5
    assert bool(calls["clamped_swiglu"]) is swiglu
    patched.zero_grad()
    patched_history = _train(patched)
    for (stock_loss, stock_grads), (patched_loss, patched_grads) in zip(stock_history, patched_history):
        assert patched_loss == pytest.approx(stock_loss, rel=1e-5)
        assert stock_grads.keys() == patched_grads.keys()
        for name, grad in stock_grads.items():
            torch.testing.assert_close(patched_grads[name], grad, **TOL, msg=lambda m, n=name: f"{n}: {m}")
    for name, value in stock.state_dict().items():
        torch.testing.assert_close(patched.state_dict()[name], value, **TOL)


def test_nemotron_instance_patching_converts_modules_and_keeps_weights():
    model = _nemotron()
    reference = copy.deepcopy(model)
    params = {name: p for name, p in model.named_parameters()}
    _apply_liger_kernel_to_instance(model=model)
    acts, norms = _nemotron_modules(model)
    assert len(acts) == 2 and len(norms) == 5
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
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)
    # in eval mode the loss comes from the logits; the fused loss is for training
    for op in ("relu_squared", "rope", "layer_norm"):
        assert calls[op], f"{op} was not called"


def test_nemotron_switches_off_leave_their_parts_stock():
    model = _nemotron()
    reference = copy.deepcopy(model)
    MODEL_TYPE_TO_APPLY_LIGER_FN["nemotron"](
        relu_squared=False,
        rope=False,
        layer_norm=False,
        cross_entropy=True,
        fused_linear_cross_entropy=False,
        model=model,
    )
    assert _nemotron_modules(model) == ([], [])
    data = batch()
    with count_op_calls() as calls:
        got = model(**data)
    assert dict(calls) == {"cross_entropy": 1}
    torch.testing.assert_close(got.loss, reference(**data).loss, **TOL)


def test_nemotron_other_activations_stay_stock():
    """Only "relu2" is Liger's; a Nemotron config naming another activation keeps it."""
    from transformers.models.nemotron import modeling_nemotron

    config = tiny_config("nemotron")
    config.hidden_act = "gelu"
    MODEL_TYPE_TO_APPLY_LIGER_FN["nemotron"]()
    mlp = modeling_nemotron.NemotronMLP(config)
    assert type(mlp.act_fn).__name__ == "GELUActivation"
    config.hidden_act = "relu2"
    assert type(modeling_nemotron.NemotronMLP(config).act_fn).__name__ == "LigerReLUSquared"


def test_nemotron_revert_restores_stock_transformers():
    from transformers.models.nemotron import modeling_nemotron

    from liger_kernel.transformers import revert_liger_kernel_patches

    names = ("ACT2FN", "apply_rotary_pos_emb", "NemotronLayerNorm1P")
    before = {name: getattr(modeling_nemotron, name) for name in names}
    forward = modeling_nemotron.NemotronForCausalLM.forward
    _apply_liger_kernel("nemotron")
    assert all(getattr(modeling_nemotron, name) is not before[name] for name in names)
    assert modeling_nemotron.NemotronForCausalLM.forward is not forward
    revert_liger_kernel_patches()
    assert {name: getattr(modeling_nemotron, name) for name in names} == before
    assert modeling_nemotron.NemotronForCausalLM.forward is forward
    model = build("nemotron")
    assert _nemotron_modules(model) == ([], [])
    with count_op_calls() as calls:
        model(**batch())
    assert not calls


def test_nemotron_lce_forward_on_a_stock_model_is_the_patched_forward():
    from liger_kernel.transformers.model.nemotron import lce_forward

    stock = _nemotron()
    patched = copy.deepcopy(stock)
    _apply_liger_kernel_to_instance(model=patched)
    data = batch()
    with count_op_calls() as calls:
        got = lce_forward(stock, input_ids=data["input_ids"], labels=data["labels"])
    expected = patched(**data)
    assert calls["fused_linear_cross_entropy"] == 1 and got.logits is None
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-6)


def test_gpt_oss_instance_patch_with_swiglu_matches_stock():
    """An existing model converted in place (swiglu=True): the same logits and
    loss as an unpatched copy measured first."""
    model = build("gpt_oss")
    data = batch()
    model.eval()
    with torch.no_grad():
        expected = model(**data)
    _apply_liger_kernel_to_instance(model=model, swiglu=True)
    with torch.no_grad(), count_op_calls() as calls:
        got = model(**data)
    assert calls["clamped_swiglu"] and calls["rope"] and calls["rms_norm"]
    torch.testing.assert_close(got.logits, expected.logits, **TOL)
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)
    torch.testing.assert_close(got.aux_loss, expected.aux_loss)


# -- Qwen3.5 (text decoder; hybrid Gated-DeltaNet / gated attention, M-RoPE composed in its rotary embedding)


@pytest.mark.parametrize("family", ["qwen3_5", "qwen3_5_moe"])
def test_qwen3_5_rope_matches_transformers_for_distinct_mrope_positions(family):
    """rope=True installs liger_rotary_pos_emb as apply_rotary_pos_emb: the same
    values and gradients as Transformers' partial rotate-half on the cos/sin its
    rotary embedding composes, with temporal/height/width positions that differ
    (so the interleaved M-RoPE layout is not the text-only one)."""
    from liger_kernel.transformers.rope import liger_rotary_pos_emb

    modeling = _modeling(family)
    config = tiny_config(family)
    config.rope_parameters = {**config.rope_parameters, "mrope_section": [1, 1, 0]}
    rotary = getattr(modeling, f"{PATCH_FAMILIES[family].prefix}TextRotaryEmbedding")(config)
    torch.manual_seed(0)
    q = torch.randn(2, 4, 12, 8, requires_grad=True)
    k = torch.randn(2, 2, 12, 8, requires_grad=True)
    position_ids = torch.stack([torch.arange(12) * (axis + 1) + axis for axis in range(3)])
    cos, sin = rotary(q, position_ids[:, None, :].expand(3, 2, 12))
    assert cos.shape == (2, 12, 4)  # half of each 8-wide head rotates
    assert not torch.equal(cos, rotary(q, position_ids[:1, None, :].expand(3, 2, 12))[0])  # H/W positions matter
    stock_q, stock_k = (t.detach().clone().requires_grad_(True) for t in (q, k))
    want = _original_apply_rotary(modeling)(stock_q, stock_k, cos, sin)
    with count_op_calls() as calls:
        got = liger_rotary_pos_emb(q, k, cos, sin)
    assert calls["rope"] == 1
    dq, dk = torch.randn_like(q), torch.randn_like(k)
    torch.autograd.backward(got, (dq, dk))
    torch.autograd.backward(want, (dq, dk))
    for a, b in ((got[0], want[0]), (got[1], want[1]), (q.grad, stock_q.grad), (k.grad, stock_k.grad)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _original_apply_rotary(modeling):
    from liger_kernel.transformers.monkey_patch import _original

    return _original(modeling, "apply_rotary_pos_emb")


@pytest.mark.parametrize("family", ["qwen3_5", "qwen3_5_moe"])
def test_qwen3_5_defaults_leave_rope_and_the_gated_delta_net_stock(family):
    """By default (rope=False, as 0.8.5) no RoPE call; the Gated-DeltaNet layer's
    gated norm and linear attention keep their stock classes; every other
    norm of the text decoder, the MLPs (the shared expert) and the experts are
    Liger's, with the stock logits and loss (router loss included)."""
    spec = PATCH_FAMILIES[family]
    modeling = _modeling(family)
    stock = build(family)
    model = copy.deepcopy(stock)
    _apply_liger_kernel_to_instance(model=model)
    linear, full = model.model.layers
    assert type(linear.linear_attn) is getattr(modeling, f"{spec.prefix}GatedDeltaNet")
    assert type(linear.linear_attn.norm) is getattr(modeling, f"{spec.prefix}RMSNormGated")
    assert type(full.self_attn.q_norm) is type(full.self_attn.k_norm) is spec.liger_rms_norm
    shared = full.mlp.shared_expert if spec.moe else full.mlp
    assert type(shared) is LigerSwiGLUMLP

    data = batch()
    with torch.no_grad():
        expected = stock(**data)
        with count_op_calls() as calls:
            got = model(**data)
    assert not calls["rope"] and calls["rms_norm"] == 2 * 2 + 2 + 1
    assert bool(calls["fused_moe"]) is spec.moe and calls["swiglu"] >= (1 if spec.moe else 2)
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)
    if spec.moe:
        torch.testing.assert_close(got.aux_loss, expected.aux_loss, **TOL)


def test_qwen3_5_multimodal_model_rope_vision_tower_and_forward():
    """model_type qwen3_5 is the vision-language model: its text decoder's norms
    and MLPs are converted and rope=True patches the text RoPE and the vision
    tower's rotary function; the vision tower's LayerNorms are converted and the ForConditionalGeneration forward
    takes the fused loss. On a batch with an image (so the M-RoPE positions
    differ across temporal, height and width) the logits, loss and gradients
    are the stock ones."""
    import transformers

    from liger_kernel.transformers import apply_liger_kernel_to_qwen3_5

    modeling = _modeling("qwen3_5")
    text = tiny_config("qwen3_5").to_dict()
    text["rope_parameters"] = {**text["rope_parameters"], "mrope_section": [1, 1, 0]}
    vision = {"depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "patch_size": 2}
    image, start, end = 120, 119, 118
    config = transformers.Qwen3_5Config(
        text_config=text,
        vision_config={**vision, "out_hidden_size": 32, "num_position_embeddings": 16},
        image_token_id=image,
        video_token_id=image + 1,
        vision_start_token_id=start,
        vision_end_token_id=end,
    )
    assert config.model_type == "qwen3_5"
    torch.manual_seed(0)
    stock = modeling.Qwen3_5ForConditionalGeneration._from_config(config, attn_implementation="eager").float()
    model = copy.deepcopy(stock)
    apply_liger_kernel_to_qwen3_5(rope=True, model=model)
    assert (
        type(model).forward
        is importlib.import_module("liger_kernel.transformers.model.qwen3_5").lce_forward_for_multimodal
    )
    decoder = model.model.language_model
    assert type(decoder.norm) is PATCH_FAMILIES["qwen3_5"].liger_rms_norm
    assert all(type(layer.mlp) is LigerSwiGLUMLP for layer in decoder.layers)
    vision_kinds = {type(m) for m in model.model.visual.modules()}
    assert LigerLayerNorm in vision_kinds and torch.nn.LayerNorm not in vision_kinds
    assert not vision_kinds & {LigerRMSNorm, LigerSwiGLUMLP}  # its GELU MLP stays stock

    data = batch()
    ids = data["input_ids"]
    ids[ids >= end] = 5
    ids[0, 1], ids[0, 2:6], ids[0, 6] = start, image, end  # one 4 x 4-patch image: 4 tokens after the 2 x 2 merge
    data["labels"] = ids.clone()
    data["labels"][0, :7] = -100
    data["pixel_values"] = torch.randn(16, 3 * 2 * 2 * 2, generator=torch.Generator().manual_seed(1))
    data["image_grid_thw"] = torch.tensor([[1, 4, 4]])
    data["mm_token_type_ids"] = (ids == image).int()
    stock.eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(**data).logits, stock(**data).logits, **TOL)
    stock.train()
    model.train()
    expected = stock(**data)
    with count_op_calls() as calls:
        got = model(**data)
    # rope: the text decoder's one attention layer and the vision tower's one block
    assert calls["rms_norm"] and calls["swiglu"] and calls["rope"] == 2 and calls["layer_norm"]
    assert calls["fused_linear_cross_entropy"] == 1 and got.logits is None
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)
    got.loss.backward()
    expected.loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    stock_grads = {name: p.grad for name, p in stock.named_parameters() if p.grad is not None}
    assert grads.keys() == stock_grads.keys()
    assert any(name.startswith("model.visual.") for name in grads)  # the image went through the vision tower
    for name, grad in stock_grads.items():
        torch.testing.assert_close(grads[name], grad, **TOL, msg=lambda m, n=name: f"{n}: {m}")
