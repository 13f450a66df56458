"""LigerClampedSwiGLUFunction (clamped_swiglu, liger_kernel.ops.clamped_swiglu)
against its float64 oracle: GPT-OSS's experts gate on the interleaved gate/up
projection, with the clamps' zero gradient outside their range."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise, shape_id
from liger_kernel.ops import LigerClampedSwiGLUFunction

pytestmark = pytest.mark.liger_op("clamped_swiglu")

# the last dimension is 2 * intermediate: gate and up interleaved
SHAPES = by_size(
    small=[(1, 2), (3, 14), (5, 260), (2, 3, 600)],
    full=[(1, 2), (3, 14), (7, 8194), (64, 5760), (2, 65538)],
)
#: (alpha, limit): GPT-OSS's, a limit that clamps most values, a steep gate
OPTIONS = [(1.702, 7.0), (1.0, 0.5), (3.0, 2.0)]


def run(x, alpha, limit, *, dtype, rng, non_leaf=()):
    return compare_with_oracle(
        LigerClampedSwiGLUFunction.apply,
        lambda args: oracles.clamped_swiglu(args["x"], args["alpha"], args["limit"]),
        {"x": x, "alpha": alpha, "limit": limit},
        dtype=dtype,
        rng=rng,
        grads=("x",),
        outputs=("c",),
        non_leaf=non_leaf,
        overwrites=LigerClampedSwiGLUFunction.overwrites,
    )


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape):
    # scale 5: about one value in six lies beyond GPT-OSS's limit of 7, so both clamps act
    x = make(shape, liger_dtype, liger_device, liger_rng, scale=5.0)
    run(x, 1.702, 7.0, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("alpha,limit", OPTIONS, ids=lambda v: str(v))
def test_options(liger_device, liger_dtype, liger_rng, alpha, limit):
    x = make((4, 3, 70), liger_dtype, liger_device, liger_rng, scale=2.0 * limit)
    run(x, alpha, limit, dtype=liger_dtype, rng=liger_rng)


def test_values_at_the_limits(liger_device, liger_dtype, liger_rng):
    """At a bound the clamp passes the gradient (torch's clamp does); beyond
    it, none: the gate's is cut above limit only, the up's on both sides."""
    limit = 2.0
    pattern = torch.tensor([limit, limit, -limit, -limit, 2 * limit, 2 * limit, -2 * limit, -2 * limit, 0.5, -0.25])
    x = pattern.repeat(3, 4).to(liger_dtype).to(liger_device)
    c, *_ = run(x, 1.702, limit, dtype=liger_dtype, rng=liger_rng)
    assert c.shape == (3, 20)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, layout):
    x = make((2, 3, 46), liger_dtype, liger_device, liger_rng, scale=5.0, layout=layout)
    run(x, 1.702, 7.0, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("shape", SHAPES[-2:], ids=shape_id)
def test_non_leaf_input(liger_device, liger_dtype, liger_rng, shape):
    """x produced by another op (not a leaf) may take its gradient in place;
    the gradient reaching the leaf must not change."""
    x = make(shape, liger_dtype, liger_device, liger_rng, scale=5.0)
    run(x, 1.702, 7.0, dtype=liger_dtype, rng=liger_rng, non_leaf=("x",))


def test_no_rows(liger_device, liger_dtype):
    x = torch.empty((0, 8), dtype=liger_dtype, device=liger_device, requires_grad=True)
    c = LigerClampedSwiGLUFunction.apply(x, 1.702, 7.0)
    assert c.shape == (0, 4)
    c.sum().backward()
    assert x.grad is not None and x.grad.shape == (0, 8)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    X = make((5, 70), liger_dtype, liger_device, liger_rng, scale=5.0)
    dC = make((5, 35), liger_dtype, liger_device, liger_rng)

    def once():
        x = X.clone().requires_grad_()
        c = LigerClampedSwiGLUFunction.apply(x, 1.702, 7.0)
        c.backward(dC.clone())
        return c, x.grad

    run_twice_bitwise(once, "LigerClampedSwiGLUFunction")


@pytest.mark.parametrize("case", bad_inputs.cases("clamped_swiglu"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
