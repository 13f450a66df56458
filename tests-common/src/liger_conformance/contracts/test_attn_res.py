"""LigerAttnResFunction against the float64 oracle (see liger_kernel.ops.attn_res)."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise, shape_id
from liger_kernel.ops import LigerAttnResFunction

pytestmark = pytest.mark.liger_op("attn_res")


def attn_res_oracle(V, w_query, w_norm, eps):
    """softmax over the blocks of <w_query, RMSNorm(v_i) * w_norm>, then the weighted sum of the blocks."""
    keys = V * torch.rsqrt(V.square().mean(-1, keepdim=True) + eps) * w_norm
    weights = torch.softmax((keys * w_query).sum(-1), dim=0)
    return (weights[..., None] * V).sum(0)


SHAPES = by_size(
    # (N, ..., D): one block, a 3-D V, N not a power of two, D over one tile (walked twice)
    small=[(1, 2, 8), (3, 2, 5, 16), (5, 7, 33), (8, 2, 3, 300), (3, 2, 2100)],
    full=[(1, 2, 8), (8, 2, 512, 4096), (5, 7, 33), (16, 1024, 2048), (3, 64, 16411)],
)


def inputs(shape, dtype, device, rng, *, query_scale=0.5, layout="contiguous", param_dtype=None):
    param_dtype = param_dtype or dtype
    V = make(shape, dtype, device, rng, layout=layout)
    w_query = make(shape[-1:], param_dtype, device, rng, scale=query_scale)
    w_norm = make(shape[-1:], param_dtype, device, rng, scale=0.2, shift=1.0)
    return V, w_query, w_norm


def run(V, w_query, w_norm, dtype, rng, eps=1e-6):
    return compare_with_oracle(
        LigerAttnResFunction.apply,
        lambda a: attn_res_oracle(a["V_stacked"], a["w_query"], a["w_norm"], a["eps"]),
        {"V_stacked": V, "w_query": w_query, "w_norm": w_norm, "eps": eps},
        dtype=dtype,
        rng=rng,
        grads=("V_stacked", "w_query", "w_norm"),
        outputs=("h",),
        reduced=("w_query", "w_norm"),
    )


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape):
    run(*inputs(shape, liger_dtype, liger_device, liger_rng), liger_dtype, liger_rng)


@pytest.mark.parametrize("query_scale", [0.0, 3.0], ids=["uniform", "peaked"])
def test_weight_spread(liger_device, liger_dtype, liger_rng, query_scale):
    """A zero query weighs the blocks equally (the mean); a large one all but picks one block."""
    run(*inputs((4, 3, 40), liger_dtype, liger_device, liger_rng, query_scale=query_scale), liger_dtype, liger_rng)


def test_eps(liger_device, liger_dtype, liger_rng):
    V, w_query, w_norm = inputs((3, 4, 24), liger_dtype, liger_device, liger_rng)
    run(V * 0.05, w_query, w_norm, liger_dtype, liger_rng, eps=1e-2)


def test_float32_parameters(liger_device, liger_dtype, liger_rng):
    """w_query and w_norm in float32 beside blocks of the tested dtype: each gradient in its own dtype."""
    args = inputs((3, 2, 3, 48), liger_dtype, liger_device, liger_rng, param_dtype=torch.float32)
    run(*args, liger_dtype, liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous(liger_device, liger_dtype, liger_rng, layout):
    run(*inputs((3, 5, 20), liger_dtype, liger_device, liger_rng, layout=layout), liger_dtype, liger_rng)


def test_no_tokens(liger_device, liger_rng):
    V, w_query, w_norm = (t.requires_grad_() for t in inputs((3, 0, 8), torch.float32, liger_device, liger_rng))
    h = LigerAttnResFunction.apply(V, w_query, w_norm, 1e-6)
    assert tuple(h.shape) == (0, 8)
    h.sum().backward()
    assert tuple(V.grad.shape) == (3, 0, 8)
    assert torch.equal(w_query.grad, torch.zeros_like(w_query)) and torch.equal(w_norm.grad, torch.zeros_like(w_norm))


def test_deterministic(liger_device, liger_dtype, liger_rng):
    V, w_query, w_norm = inputs((4, 37, 50), liger_dtype, liger_device, liger_rng)
    dh = make((37, 50), liger_dtype, liger_device, liger_rng)

    def once():
        leaves = [t.clone().requires_grad_() for t in (V, w_query, w_norm)]
        h = LigerAttnResFunction.apply(*leaves, 1e-6)
        h.backward(dh)
        return (h, *(leaf.grad for leaf in leaves))

    run_twice_bitwise(once, "attn_res")


@pytest.mark.parametrize("case", bad_inputs.cases("attn_res"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
