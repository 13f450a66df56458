"""The SwiGLU multipliers, fused gate-up, MLP-by-weights and partial-rotary
names (liger-kernel 0.8.5's) against the Transformers modules and the plain
torch math they stand for, on the CPU (torch backend)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from tiny_models import count_op_calls, tiny_config
from transformers.models.falcon_h1.modeling_falcon_h1 import FalconH1MLP
from transformers.models.llama.modeling_llama import LlamaMLP

from liger_kernel import functional as core_functional
from liger_kernel.ops import LigerFusedGateUpSiLUMulFunction, LigerMLPFunction
from liger_kernel.ops.swiglu import swiglu_fused_gate_up_backward, swiglu_fused_gate_up_forward
from liger_kernel.transformers import LigerFalconH1MLP, LigerFalconH1SwiGLUMLP, LigerMLP, liger_rotary_pos_emb
from liger_kernel.transformers import functional as LF

TOL = dict(rtol=1e-5, atol=1e-5)


def _falcon_config(mlp_bias: bool = False):
    config = tiny_config("falcon_h1")
    config.mlp_bias = mlp_bias
    return config


def _same_weights(stock: torch.nn.Module, ours: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in stock.parameters():
            p.normal_(std=0.2)
    ours.load_state_dict(stock.state_dict())


def _forward_and_grads(module: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_(True)
    out = module(x)
    out.pow(2).sum().backward()
    return (out, x.grad, *(p.grad for _, p in sorted(module.named_parameters())))


@pytest.mark.parametrize("mlp_bias", [False, True])
@pytest.mark.parametrize("liger_cls", [LigerFalconH1SwiGLUMLP, LigerFalconH1MLP])
def test_falcon_h1_mlps_match_stock(liger_cls, mlp_bias):
    """down_proj(up_proj(x) * silu(gate_proj(x) * g)) * d with Falcon-H1's
    multipliers (0.5, 1.5 in the tiny config); with a biased down_proj the
    multiplier stays after it. LigerFalconH1MLP works by weights: it refuses biases."""
    config = _falcon_config(mlp_bias)
    assert tuple(config.mlp_multipliers) == (0.5, 1.5)
    if liger_cls is LigerFalconH1MLP and mlp_bias:
        with pytest.raises(ValueError, match="mlp_bias"):
            liger_cls(config)
        return
    stock, ours = FalconH1MLP(config), liger_cls(config)
    _same_weights(stock, ours)
    x = torch.randn(2, 5, config.hidden_size)
    with count_op_calls() as calls:
        got = _forward_and_grads(ours, x)
    assert calls["swiglu"] == 1
    for mine, theirs in zip(got, _forward_and_grads(stock, x)):
        torch.testing.assert_close(mine, theirs, **TOL)


def test_liger_mlp_matches_llama():
    config = tiny_config("llama")
    stock, ours = LlamaMLP(config), LigerMLP(config)
    _same_weights(stock, ours)
    x = torch.randn(3, config.hidden_size)
    for mine, theirs in zip(_forward_and_grads(ours, x), _forward_and_grads(stock, x)):
        torch.testing.assert_close(mine, theirs, **TOL)
    config.mlp_bias = True
    with pytest.raises(ValueError, match="mlp_bias"):
        LigerMLP(config)


def test_mlp_function_by_weights():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, requires_grad=True)
    weights = [torch.randn(16, 8, requires_grad=True), torch.randn(16, 8, requires_grad=True)]
    weights.append(torch.randn(8, 16, requires_grad=True))
    out = LigerMLPFunction.apply(x, *weights, gate_multiplier=0.5, down_multiplier=2.0)
    out.sum().backward()
    grads = [t.grad for t in (x, *weights)]
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, *weights)]
    xr, gate, up, down = leaves
    expected = F.linear(F.silu(F.linear(xr, gate) * 0.5) * F.linear(xr, up), down) * 2.0
    expected.sum().backward()
    torch.testing.assert_close(out, expected, **TOL)
    for got, want in zip(grads, (t.grad for t in leaves)):
        torch.testing.assert_close(got, want, **TOL)
    with pytest.raises(ValueError, match="down_weight"):
        LigerMLPFunction.apply(x, weights[0], weights[1], weights[0])
    with pytest.raises(TypeError, match="gate_multiplier"):
        LigerMLPFunction.apply(x, *weights, "0.5")


def test_fused_gate_up_forward_and_backward_functions():
    """(y, c) and dy of the fused [gate | up] tensor; in_place=True writes dy
    over y (and moves its version), in_place=False leaves y alone."""
    torch.manual_seed(0)
    y = torch.randn(3, 4, 2 * 6)
    dc = torch.randn(3, 4, 6)
    returned, c = swiglu_fused_gate_up_forward(y)
    gate, up = y.chunk(2, dim=-1)
    assert returned is y
    torch.testing.assert_close(c, F.silu(gate) * up, **TOL)

    leaf = y.clone().requires_grad_(True)
    (F.silu(leaf[..., :6]) * leaf[..., 6:]).backward(dc)
    before = y.clone()
    dy = swiglu_fused_gate_up_backward(y, dc)
    assert torch.equal(y, before)
    torch.testing.assert_close(dy, leaf.grad, **TOL)

    version = y._version
    written = swiglu_fused_gate_up_backward(y, dc, in_place=True)
    assert written is y and y._version > version
    torch.testing.assert_close(y, leaf.grad, **TOL)
    with pytest.raises(ValueError, match="even"):
        swiglu_fused_gate_up_forward(torch.randn(2, 5))


def test_fused_gate_up_function_is_the_gate_of_the_halves():
    y_leaf = torch.randn(2, 3, 10, requires_grad=True)
    with count_op_calls() as calls:
        c = LigerFusedGateUpSiLUMulFunction.apply(y_leaf * 1.0, in_place=True)
    assert calls["swiglu"] == 1
    c.pow(2).sum().backward()
    reference = y_leaf.detach().clone().requires_grad_(True)
    expected = F.silu(reference[..., :5]) * reference[..., 5:]
    expected.pow(2).sum().backward()
    torch.testing.assert_close(c, expected, **TOL)
    torch.testing.assert_close(y_leaf.grad, reference.grad, **TOL)
    with pytest.raises(TypeError, match="in_place"):
        LigerFusedGateUpSiLUMulFunction.apply(y_leaf, in_place=1)


def test_core_functional_swiglu_passes_the_multipliers_to_the_op():
    a, b = torch.randn(4, 7), torch.randn(4, 7)
    with count_op_calls() as calls:
        out = core_functional.swiglu(a, b, gate_multiplier=0.25, down_multiplier=3.0)
    assert calls["swiglu"] == 1
    torch.testing.assert_close(out, F.silu(0.25 * a) * b * 3.0, **TOL)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


@pytest.mark.parametrize("entry", [liger_rotary_pos_emb, LF.liger_rope])
def test_rotary_dim_with_tables_half_as_wide(entry):
    """rotary_dim given with cos/sin rotary_dim / 2 wide (halves not repeated,
    GPT-OSS's tables): as the repeated tables would rotate, the rest passes."""
    q, k = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 6, 8)
    angles = torch.randn(1, 6, 3)
    cos, sin = angles.cos(), angles.sin()
    q_out, k_out = entry(q, k, cos, sin, None, 1, 6)
    full_cos, full_sin = torch.cat((cos, cos), -1).unsqueeze(1), torch.cat((sin, sin), -1).unsqueeze(1)
    for got, x in ((q_out, q), (k_out, k)):
        rotated = x[..., :6] * full_cos + _rotate_half(x[..., :6]) * full_sin
        torch.testing.assert_close(got, torch.cat((rotated, x[..., 6:]), -1), **TOL)
    # rotary_dim=None infers the width from the tables: here, 3 entries is odd
    with pytest.raises(ValueError, match="even"):
        entry(q, k, cos, sin)


def test_falcon_h1_patch_keeps_the_mixer_stock():
    """The hybrid layer's Mamba-2 mixer and its gated norm are not converted."""
    from tiny_models import build

    from liger_kernel.transformers import LigerRMSNorm, _apply_liger_kernel_to_instance

    model = build("falcon_h1")
    mixers = [copy.copy(type(layer.mamba)) for layer in model.model.layers]
    _apply_liger_kernel_to_instance(model=model)
    for layer, mixer_cls in zip(model.model.layers, mixers):
        assert type(layer.mamba) is mixer_cls
        assert type(layer.mamba.norm).__name__ == "FalconH1RMSNormGated"
        assert type(layer.feed_forward) is LigerFalconH1SwiGLUMLP
        assert type(layer.input_layernorm) is type(layer.pre_ff_layernorm) is LigerRMSNorm
