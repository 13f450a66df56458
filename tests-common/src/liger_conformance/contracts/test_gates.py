"""The gated activations against their float64 oracles:
LigerSiLUMulFunction (swiglu, liger_kernel.ops.swiglu) and LigerGELUMulFunction
(geglu, liger_kernel.ops.geglu). They share a contract shape, so one set of
tests covers both; each case is marked with its op."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import (
    compare_with_oracle,
    make,
    run_twice_bitwise,
    shape_id,
)
from liger_conformance.tolerances import assert_close
from liger_kernel.ops import LigerFusedGateUpSiLUMulFunction, LigerGELUMulFunction, LigerSiLUMulFunction

GATES = [
    pytest.param((LigerSiLUMulFunction, oracles.swiglu), id="swiglu", marks=pytest.mark.liger_op("swiglu")),
    pytest.param((LigerGELUMulFunction, oracles.geglu), id="geglu", marks=pytest.mark.liger_op("geglu")),
]
SHAPES = by_size(
    small=[(1, 1), (3, 7), (5, 130), (2, 3, 300)],
    full=[(1, 1), (3, 7), (7, 4097), (2, 64, 11008), (2, 65537)],
)


def run(gate, a, b, *, dtype, rng, non_leaf=()):
    function, oracle = gate
    return compare_with_oracle(
        function.apply,
        lambda args: oracle(args["a"], args["b"]),
        {"a": a, "b": b},
        dtype=dtype,
        rng=rng,
        grads=("a", "b"),
        outputs=("c",),
        non_leaf=non_leaf,
        overwrites=function.overwrites,
    )


@pytest.mark.parametrize("gate", GATES)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, gate, shape):
    a = make(shape, liger_dtype, liger_device, liger_rng, scale=2.0)
    b = make(shape, liger_dtype, liger_device, liger_rng)
    run(gate, a, b, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("gate", GATES)
@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, gate, layout):
    a = make((2, 3, 45), liger_dtype, liger_device, liger_rng, scale=2.0, layout=layout)
    b = make((2, 3, 45), liger_dtype, liger_device, liger_rng, layout=layout)
    run(gate, a, b, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("gate", GATES)
@pytest.mark.parametrize("non_leaf", [("a", "b"), ("a",), ("b",)], ids="+".join)
@pytest.mark.parametrize("shape", SHAPES[-2:], ids=shape_id)
def test_non_leaf_inputs(liger_device, liger_dtype, liger_rng, gate, non_leaf, shape):
    """a and b produced by other ops (not leaves) may take their gradients in
    place; the gradients reaching the leaves must not change, and a leaf
    passed beside a non-leaf stays untouched."""
    a = make(shape, liger_dtype, liger_device, liger_rng, scale=2.0)
    b = make(shape, liger_dtype, liger_device, liger_rng)
    run(gate, a, b, dtype=liger_dtype, rng=liger_rng, non_leaf=non_leaf)


@pytest.mark.parametrize("gate", GATES)
def test_halves_of_one_tensor(liger_device, liger_dtype, liger_rng, gate):
    """a and b as the two halves of one non-leaf projection, as a fused
    gate-up MLP makes them: each gradient lands on its own half."""
    function, oracle = gate
    leaf = make((3, 2 * 45), liger_dtype, liger_device, liger_rng).requires_grad_(True)
    a, b = leaf.clone().chunk(2, dim=-1)
    c = function.apply(a, b)
    dc = make((3, 45), liger_dtype, liger_device, liger_rng)
    c.backward(dc)
    leaf64 = leaf.detach().to(torch.float64).requires_grad_(True)
    oracle(*leaf64.chunk(2, dim=-1)).backward(dc.to(torch.float64))
    assert_close(leaf.grad, leaf64.grad, liger_dtype, "gradient of the fused projection", "elementwise")


@pytest.mark.parametrize("gate", GATES)
def test_non_leaf_padded_rows(liger_device, liger_dtype, liger_rng, gate):
    """a and b as padded-row views of non-leaf tensors: a backend that writes
    the gradients over them must write those elements only, never the padding
    beside them, and the leaves' gradients stay exact."""
    function, oracle = gate
    leaves = [make((3, 50), liger_dtype, liger_device, liger_rng).requires_grad_(True) for _ in range(2)]
    bases = [leaf * 1 for leaf in leaves]
    a, b = (base[:, :45] for base in bases)
    padding = [base[:, 45:].detach().clone() for base in bases]
    c = function.apply(a, b)
    dc = make((3, 45), liger_dtype, liger_device, liger_rng)
    c.backward(dc)
    for base, pad in zip(bases, padding):
        assert torch.equal(base[:, 45:].detach(), pad), "the backward wrote beside a and b"
    wide = [leaf.detach().to(torch.float64).requires_grad_(True) for leaf in leaves]
    expected = oracle(wide[0][:, :45], wide[1][:, :45])
    expected.backward(dc.to(torch.float64))
    assert_close(c, expected, liger_dtype, "output", "elementwise")
    for leaf, reference, name in zip(leaves, wide, "ab"):
        assert_close(leaf.grad, reference.grad, liger_dtype, f"gradient of {name}'s leaf", "elementwise")


@pytest.mark.parametrize("gate", GATES)
def test_saturated_inputs(liger_device, liger_dtype, liger_rng, gate):
    """Large |a| saturates the sigmoid and tanh; computed in fp32, the results stay finite and exact."""
    a = make((4, 40), liger_dtype, liger_device, liger_rng, scale=25.0)
    b = make((4, 40), liger_dtype, liger_device, liger_rng)
    run(gate, a, b, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("gate", GATES)
def test_deterministic(liger_device, liger_dtype, liger_rng, gate):
    function, _ = gate
    A = make((5, 70), liger_dtype, liger_device, liger_rng)
    B = make((5, 70), liger_dtype, liger_device, liger_rng)
    dC = make((5, 70), liger_dtype, liger_device, liger_rng)

    def once():
        a, b = A.clone().requires_grad_(), B.clone().requires_grad_()
        c = function.apply(a, b)
        c.backward(dC.clone())
        return c, a.grad, b.grad

    run_twice_bitwise(once, function.__name__)


@pytest.mark.liger_op("swiglu")
@pytest.mark.parametrize("multipliers", [(0.5, 1.0), (1.0, 0.25), (2.5, 0.75), (-1.5, 3.0)], ids=str)
@pytest.mark.parametrize("shape", SHAPES[-2:], ids=shape_id)
def test_swiglu_multipliers(liger_device, liger_dtype, liger_rng, multipliers, shape):
    """Falcon-H1's c = silu(g * a) * b * d, forward and both gradients, with
    a and b non-leaf (so a backend's overwriting backward is exercised too)."""
    gate_multiplier, down_multiplier = multipliers
    a = make(shape, liger_dtype, liger_device, liger_rng, scale=2.0)
    b = make(shape, liger_dtype, liger_device, liger_rng)
    compare_with_oracle(
        LigerSiLUMulFunction.apply,
        lambda args: oracles.swiglu(args["a"], args["b"], gate_multiplier, down_multiplier),
        {"a": a, "b": b, "gate_multiplier": gate_multiplier, "down_multiplier": down_multiplier},
        dtype=liger_dtype,
        rng=liger_rng,
        grads=("a", "b"),
        outputs=("c",),
        non_leaf=("a", "b"),
        overwrites=LigerSiLUMulFunction.overwrites,
    )


@pytest.mark.liger_op("swiglu")
def test_swiglu_multipliers_by_keyword(liger_device, liger_dtype, liger_rng):
    """The multipliers bind by name, and the defaults (1, 1) are the plain gate."""
    a = make((3, 40), liger_dtype, liger_device, liger_rng, scale=2.0)
    b = make((3, 40), liger_dtype, liger_device, liger_rng)
    plain = LigerSiLUMulFunction.apply(a, b)
    assert torch.equal(LigerSiLUMulFunction.apply(a, b, gate_multiplier=1.0, down_multiplier=1.0), plain)
    scaled = LigerSiLUMulFunction.apply(a, b, down_multiplier=0.5, gate_multiplier=2.0)
    expected = oracles.swiglu(a.to(torch.float64), b.to(torch.float64), 2.0, 0.5)
    assert_close(scaled, expected, liger_dtype, "swiglu with keyword multipliers", "elementwise")


@pytest.mark.liger_op("swiglu")
@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("layout", ["halves", "strided"])
def test_fused_gate_up(liger_device, liger_dtype, liger_rng, layout, in_place):
    """LigerFusedGateUpSiLUMulFunction: y = [gate | up] -> silu(gate) * up, and
    y's gradient, for y a non-leaf projection output (or a strided view of
    one). y is written only as the swiglu op allows for its a and b: during
    backward, with its version counter moved."""
    width = 2 * 45
    leaf = make((3, 2 * width if layout == "strided" else width), liger_dtype, liger_device, liger_rng)
    leaf.requires_grad_(True)
    projected = leaf.clone()
    y = projected[:, ::2] if layout == "strided" else projected
    before, version = y.detach().clone(), y._version
    dc = make((3, width // 2), liger_dtype, liger_device, liger_rng)
    c = LigerFusedGateUpSiLUMulFunction.apply(y, in_place)
    assert torch.equal(y.detach(), before), "the forward wrote over y"
    c.backward(dc)
    assert torch.equal(y.detach(), before) or y._version > version, "y was written without moving its version"
    leaf64 = leaf.detach().to(torch.float64).requires_grad_(True)
    y64 = leaf64[:, ::2] if layout == "strided" else leaf64
    c64 = oracles.swiglu(*y64.chunk(2, dim=-1))
    c64.backward(dc.to(torch.float64))
    assert_close(c, c64, liger_dtype, "fused gate-up output", "elementwise")
    assert_close(leaf.grad, leaf64.grad, liger_dtype, "fused gate-up gradient", "elementwise")


BAD_INPUTS = [
    pytest.param(case, id=f"{op}-{case.name}", marks=pytest.mark.liger_op(op))
    for op in ("swiglu", "geglu")
    for case in bad_inputs.cases(op)
]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
