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
from liger_kernel.ops import LigerGELUMulFunction, LigerSiLUMulFunction

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


BAD_INPUTS = [
    pytest.param(case, id=f"{op}-{case.name}", marks=pytest.mark.liger_op(op))
    for op in ("swiglu", "geglu")
    for case in bad_inputs.cases(op)
]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
