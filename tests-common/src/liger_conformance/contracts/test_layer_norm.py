"""LigerLayerNormFunction against the float64 oracle (see liger_kernel.ops.layer_norm)."""

from __future__ import annotations

import pytest

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import (
    compare_with_oracle,
    make,
    run_twice_bitwise,
    shape_id,
)
from liger_kernel.ops import LigerLayerNormFunction

pytestmark = pytest.mark.liger_op("layer_norm")

EPS = 1e-6
SHAPES = by_size(
    small=[(1, 7), (3, 64), (2, 3, 300), (2, 48, 13)],
    full=[(1, 7), (5, 4097), (2, 16, 8192), (2, 65537)],
)


def run(X, W, B, eps=EPS, *, dtype, rng):
    return compare_with_oracle(
        LigerLayerNormFunction.apply,
        lambda a: oracles.layer_norm(a["X"], a["W"], a["B"], a["eps"]),
        {"X": X, "W": W, "B": B, "eps": eps},
        dtype=dtype,
        rng=rng,
        grads=("X", "W", "B") if B is not None else ("X", "W"),
        outputs=("Y",),
        reduced=("W", "B"),
    )


def inputs(shape, dtype, device, rng, bias=True, layout="contiguous", shift=0.0):
    X = make(shape, dtype, device, rng, layout=layout, shift=shift)
    W = make(shape[-1:], dtype, device, rng, scale=0.5, shift=1.0)
    B = make(shape[-1:], dtype, device, rng, scale=0.5) if bias else None
    return X, W, B


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, bias):
    X, W, B = inputs(shape, liger_dtype, liger_device, liger_rng, bias)
    run(X, W, B, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, layout):
    X, W, B = inputs((2, 3, 45), liger_dtype, liger_device, liger_rng, layout=layout)
    run(X, W, B, dtype=liger_dtype, rng=liger_rng)


def test_large_eps_and_mean(liger_device, liger_dtype, liger_rng):
    """A large mean must be removed before squaring, and eps must be honoured."""
    X, W, B = inputs((4, 33), liger_dtype, liger_device, liger_rng, shift=3.0)
    run(X, W, B, 0.5, dtype=liger_dtype, rng=liger_rng)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    X, W, B = inputs((5, 70), liger_dtype, liger_device, liger_rng)
    dY = make((5, 70), liger_dtype, liger_device, liger_rng)

    def once():
        x, w, b = (t.clone().requires_grad_() for t in (X, W, B))
        y = LigerLayerNormFunction.apply(x, w, b, EPS)
        y.backward(dY.clone())
        return y, x.grad, w.grad, b.grad

    run_twice_bitwise(once, "layer_norm")


@pytest.mark.parametrize("case", bad_inputs.cases("layer_norm"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
