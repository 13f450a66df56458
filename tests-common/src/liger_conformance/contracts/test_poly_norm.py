"""LigerPolyNormFunction against the float64 oracle (see liger_kernel.ops.poly_norm)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import (
    compare_with_oracle,
    make,
    oracle_device,
    run_twice_bitwise,
    shape_id,
)
from liger_conformance.tolerances import assert_close
from liger_kernel.ops import LigerPolyNormFunction

pytestmark = pytest.mark.liger_op("poly_norm")


def oracle(x: Tensor, w: Tensor, b: Tensor, eps: float) -> Tensor:
    """y = w[0] * norm(x**3) + w[1] * norm(x**2) + w[2] * norm(x) + b, with
    norm(u) = u / sqrt(mean(u**2) + eps) over the last dimension."""

    def norm(u: Tensor) -> Tensor:
        return u * torch.rsqrt(u.pow(2).mean(dim=-1, keepdim=True) + eps)

    return w[0] * norm(x.pow(3)) + w[1] * norm(x.pow(2)) + w[2] * norm(x) + b.reshape(())


EPS = 1e-6
SHAPES = by_size(
    small=[(1, 7), (3, 64), (2, 3, 300), (2, 48, 13), (2, 16400)],
    full=[(1, 7), (5, 4097), (2, 1024, 4096), (4, 2048, 1024), (2, 65537)],
)


def inputs(shape, dtype, device, rng, bias_shape=(), layout="contiguous"):
    X = make(shape, dtype, device, rng, layout=layout)
    W = make((3,), dtype, device, rng, scale=0.2, shift=1.0 / 3.0)
    B = make(bias_shape, dtype, device, rng, scale=0.5)
    return X, W, B


def run(X, W, B, eps=EPS, in_place=True, *, dtype, rng, grads=("X", "W", "B")):
    return compare_with_oracle(
        LigerPolyNormFunction.apply,
        lambda a: oracle(a["X"], a["W"], a["B"], a["eps"]),
        {"X": X, "W": W, "B": B, "eps": eps, "in_place": in_place},
        dtype=dtype,
        rng=rng,
        grads=grads,
        outputs=("Y",),
        reduced=("W", "B"),
    )


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("in_place", [True, False], ids=["in_place", "out_of_place"])
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, in_place):
    X, W, B = inputs(shape, liger_dtype, liger_device, liger_rng)
    run(X, W, B, in_place=in_place, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("bias_shape", [(), (1,)], ids=["scalar_bias", "one_element_bias"])
def test_bias_shapes(liger_device, liger_dtype, liger_rng, bias_shape):
    X, W, B = inputs((3, 20), liger_dtype, liger_device, liger_rng, bias_shape)
    run(X, W, B, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
@pytest.mark.parametrize("in_place", [True, False], ids=["in_place", "out_of_place"])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, layout, in_place):
    X, W, B = inputs((3, 2, 45), liger_dtype, liger_device, liger_rng, layout=layout)
    run(X, W, B, in_place=in_place, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("grads", [("X",), ("W", "B"), ("B",)], ids=["x_only", "weight_and_bias", "bias_only"])
def test_gradient_subsets(liger_device, liger_dtype, liger_rng, grads):
    X, W, B = inputs((4, 24), liger_dtype, liger_device, liger_rng)
    run(X, W, B, dtype=liger_dtype, rng=liger_rng, grads=grads)


def test_large_eps(liger_device, liger_dtype, liger_rng):
    X, W, B = inputs((4, 33), liger_dtype, liger_device, liger_rng)
    run(X, W, B, 0.5, dtype=liger_dtype, rng=liger_rng)


def test_keyword_defaults(liger_device, liger_rng):
    """eps and in_place have defaults (1e-6, True) and may be passed by keyword."""
    X, W, B = inputs((3, 16), torch.float32, liger_device, liger_rng)
    expected = LigerPolyNormFunction.apply(X, W, B, 1e-6, True)
    assert torch.equal(LigerPolyNormFunction.apply(X, W, B), expected)
    assert torch.equal(LigerPolyNormFunction.apply(X, W, B, in_place=True, eps=1e-6), expected)


@pytest.mark.parametrize("in_place", [True, False], ids=["in_place", "out_of_place"])
def test_in_place_keeps_shared_gradient(liger_device, liger_dtype, liger_rng, in_place):
    """in_place=False: two norms whose outputs are added receive the same
    gradient tensor from autograd, and neither may spoil it for the other.
    in_place=True lets a backend write dX over the gradient autograd hands it
    (the API contract), so there a single consumer must get the right dX, dW
    and dB. The caller's X, W, B and dY stay as they were either way."""
    shape = (4, 20)
    X1 = make(shape, liger_dtype, liger_device, liger_rng).requires_grad_()
    X2 = make(shape, liger_dtype, liger_device, liger_rng).requires_grad_()
    W = make((3,), liger_dtype, liger_device, liger_rng, scale=0.2, shift=0.3).requires_grad_()
    B = make((), liger_dtype, liger_device, liger_rng).requires_grad_()
    dY = make(shape, liger_dtype, liger_device, liger_rng)
    saved = [t.detach().clone() for t in (X1, X2, W, B, dY)]
    ref = [t.detach().to(oracle_device(t.device), torch.float64).requires_grad_() for t in (X1, X2, W, B)]
    ref_dY = dY.to(oracle_device(dY.device), torch.float64)

    if in_place:
        Y1 = LigerPolyNormFunction.apply(X1, W, B, EPS, True)
        (Y1 * dY).sum().backward()
        (oracle(ref[0], ref[2], ref[3], EPS) * ref_dY).sum().backward()
        assert_close(X1.grad, ref[0].grad, liger_dtype, "gradient of X")
    else:
        Y1 = LigerPolyNormFunction.apply(X1, W, B, EPS, False)
        Y2 = LigerPolyNormFunction.apply(X2, W, B, EPS, False)
        ((Y1 + Y2) * dY).sum().backward()
        ref_y = oracle(ref[0], ref[2], ref[3], EPS) + oracle(ref[1], ref[2], ref[3], EPS)
        (ref_y * ref_dY).sum().backward()
        assert_close(X1.grad, ref[0].grad, liger_dtype, "gradient of the first X")
        assert_close(X2.grad, ref[1].grad, liger_dtype, "gradient of the second X")
    assert_close(W.grad, ref[2].grad, liger_dtype, "gradient of W", "reduced")
    assert_close(B.grad, ref[3].grad, liger_dtype, "gradient of B", "reduced")
    for name, tensor, before in zip(("X1", "X2", "W", "B", "dY"), (X1, X2, W, B, dY), saved):
        assert torch.equal(tensor.detach(), before), f"the caller's {name} was modified"


def test_out_of_place_leaves_upstream_gradient(liger_device, liger_dtype, liger_rng):
    X, W, B = inputs((3, 16), liger_dtype, liger_device, liger_rng)
    X.requires_grad_()
    dY = make((3, 16), liger_dtype, liger_device, liger_rng)
    saved = dY.clone()
    LigerPolyNormFunction.apply(X, W, B, EPS, False).backward(dY)
    assert torch.equal(dY, saved), "in_place=False, yet backward wrote into the upstream gradient"


def test_deterministic(liger_device, liger_dtype, liger_rng):
    X, W, B = inputs((9, 70), liger_dtype, liger_device, liger_rng)
    dY = make((9, 70), liger_dtype, liger_device, liger_rng)

    def once():
        x, w, b = (t.clone().requires_grad_() for t in (X, W, B))
        y = LigerPolyNormFunction.apply(x, w, b, EPS, False)
        y.backward(dY.clone())
        return y, x.grad, w.grad, b.grad

    run_twice_bitwise(once, "poly_norm")


@pytest.mark.parametrize("case", bad_inputs.cases("poly_norm"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
