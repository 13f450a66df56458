"""The tiled gated MLPs (liger_kernel.ops.tiled_mlp over each backend's gate op)
against the untiled MLP in float64: the output and the gradients of x and of
every weight, through uneven tiles and recomputation in the backward."""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F

from liger_conformance import by_size, oracles
from liger_conformance.contracts._support import make, oracle_device, shape_id
from liger_conformance.tolerances import assert_close
from liger_kernel.transformers import LigerTiledGEGLUMLP, LigerTiledSwiGLUMLP

#: (x shape, intermediate size, shards): an uneven last tile, more shards than tokens, the default
CASES = by_size(
    small=[((2, 37, 16), 40, 4), ((45, 24), 24, 3), ((1, 3, 16), 32, 8), ((1, 40, 16), 24, None)],
    full=[((2, 1000, 256), 704, 4), ((4097, 128), 384, 5), ((1, 3, 64), 128, 8), ((2, 2048, 512), 1376, None)],
)
GATES = {
    "swiglu": (LigerTiledSwiGLUMLP, "silu", oracles.swiglu),
    "geglu": (LigerTiledGEGLUMLP, "gelu_pytorch_tanh", oracles.geglu),
}


def run(gate, liger_device, liger_dtype, liger_rng, shape, intermediate, shards):
    cls, act, oracle_gate = GATES[gate]
    config = types.SimpleNamespace(hidden_size=shape[-1], intermediate_size=intermediate, hidden_act=act)
    mlp = cls(config, num_shards=shards)
    with torch.no_grad():
        for p in mlp.parameters():
            p.copy_(make(p.shape, torch.float64, torch.device("cpu"), liger_rng, scale=shape[-1] ** -0.5))
    mlp.to(device=liger_device, dtype=liger_dtype)
    x = make(shape, liger_dtype, liger_device, liger_rng).requires_grad_()
    dy = make(shape, liger_dtype, liger_device, liger_rng)
    y = mlp(x)
    y.backward(dy)

    where = oracle_device(liger_device)
    weights = {n: p.detach().to(where, torch.float64).requires_grad_() for n, p in mlp.named_parameters()}
    x64 = x.detach().to(where, torch.float64).requires_grad_()
    gated = oracle_gate(F.linear(x64, weights["gate_proj.weight"]), F.linear(x64, weights["up_proj.weight"]))
    y64 = F.linear(gated, weights["down_proj.weight"])
    y64.backward(dy.to(where, torch.float64))

    assert y.dtype == liger_dtype
    assert_close(y, y64, liger_dtype, "output", "reduced")
    assert_close(x.grad, x64.grad, liger_dtype, "gradient of x", "reduced")
    for name, p in mlp.named_parameters():
        assert_close(p.grad, weights[name].grad, liger_dtype, f"gradient of {name}", "reduced")


@pytest.mark.liger_op("swiglu")
@pytest.mark.parametrize(
    ("shape", "intermediate", "shards"), CASES, ids=lambda v: shape_id(v) if isinstance(v, tuple) else str(v)
)
def test_tiled_swiglu_mlp(liger_device, liger_dtype, liger_rng, shape, intermediate, shards):
    run("swiglu", liger_device, liger_dtype, liger_rng, shape, intermediate, shards)


@pytest.mark.liger_op("geglu")
@pytest.mark.parametrize(
    ("shape", "intermediate", "shards"), CASES, ids=lambda v: shape_id(v) if isinstance(v, tuple) else str(v)
)
def test_tiled_geglu_mlp(liger_device, liger_dtype, liger_rng, shape, intermediate, shards):
    run("geglu", liger_device, liger_dtype, liger_rng, shape, intermediate, shards)
