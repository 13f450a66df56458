"""LigerReLUSquaredFunction against the float64 oracle (see liger_kernel.ops.relu_squared)."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise, shape_id
from liger_kernel.ops import LigerReLUSquaredFunction

pytestmark = pytest.mark.liger_op("relu_squared")

SHAPES = by_size(
    small=[(1, 1), (3, 7), (5, 130), (2, 3, 300), (2, 4100)],
    full=[(1, 1), (3, 7), (7, 4097), (2, 64, 11008), (2, 65537)],
)


def run(X, *, dtype, rng, non_leaf=()):
    return compare_with_oracle(
        LigerReLUSquaredFunction.apply,
        lambda args: oracles.relu_squared(args["X"]),
        {"X": X},
        dtype=dtype,
        rng=rng,
        grads=("X",),
        outputs=("y",),
        non_leaf=non_leaf,
        overwrites=LigerReLUSquaredFunction.overwrites,
    )


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape):
    run(make(shape, liger_dtype, liger_device, liger_rng, scale=2.0), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, layout):
    X = make((2, 3, 45), liger_dtype, liger_device, liger_rng, scale=2.0, layout=layout)
    run(X, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("shape", SHAPES[-2:], ids=shape_id)
def test_non_leaf_input(liger_device, liger_dtype, liger_rng, shape):
    """X produced by another op (an up projection) may take its gradient in
    place; the gradient reaching the leaf must not change."""
    run(make(shape, liger_dtype, liger_device, liger_rng, scale=2.0), dtype=liger_dtype, rng=liger_rng, non_leaf=("X",))


def test_zero_and_negative_side_is_exactly_zero(liger_device, liger_dtype, liger_rng):
    """relu(x)**2 and its slope are exactly 0 for x <= 0 (0 itself included:
    the one-sided slope of the kink), and exact squares of small integers above."""
    values = torch.tensor([-3.0, -1.0, -0.0, 0.0, 1.0, 2.0, 3.0, 0.5], dtype=liger_dtype, device=liger_device)
    X = values.repeat(4, 1).requires_grad_()
    y = LigerReLUSquaredFunction.apply(X)
    y.backward(torch.ones_like(y))
    expected = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 4.0, 9.0, 0.25], dtype=liger_dtype).repeat(4, 1)
    slope = torch.tensor([0.0, 0.0, 0.0, 0.0, 2.0, 4.0, 6.0, 1.0], dtype=liger_dtype).repeat(4, 1)
    assert torch.equal(y.detach().cpu(), expected)
    assert torch.equal(X.grad.cpu(), slope)


def test_large_inputs(liger_device, liger_dtype, liger_rng):
    """|x| up to ~100 (squares near 1e4): computed in fp32, finite and within tolerance."""
    run(make((4, 40), liger_dtype, liger_device, liger_rng, scale=30.0), dtype=liger_dtype, rng=liger_rng)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    X = make((5, 70), liger_dtype, liger_device, liger_rng)
    dY = make((5, 70), liger_dtype, liger_device, liger_rng)

    def once():
        x = X.clone().requires_grad_()
        y = LigerReLUSquaredFunction.apply(x)
        y.backward(dY.clone())
        return y, x.grad

    run_twice_bitwise(once, "relu_squared")


def test_empty_input(liger_device, liger_rng):
    """Elementwise, so an empty X (no rows, or a last dimension of 0) gives an empty y and dx."""
    for shape in ((0, 8), (3, 0)):
        X = torch.empty(shape, device=liger_device).requires_grad_()
        y = LigerReLUSquaredFunction.apply(X)
        y.backward(torch.ones_like(y))
        assert tuple(y.shape) == shape and tuple(X.grad.shape) == shape


@pytest.mark.parametrize("case", bad_inputs.cases("relu_squared"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
