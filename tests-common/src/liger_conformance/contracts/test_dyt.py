"""LigerDyTFunction against the float64 oracle (see liger_kernel.ops.dyt)."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import (
    compare_with_oracle,
    make,
    run_twice_bitwise,
    shape_id,
)
from liger_kernel.ops import LigerDyTFunction

pytestmark = pytest.mark.liger_op("dyt")


def dyt_oracle(x: torch.Tensor, alpha: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None) -> torch.Tensor:
    """gamma * tanh(alpha * x) + beta over the last dimension (no shift when beta is None)."""
    y = gamma * torch.tanh(alpha * x)
    return y if beta is None else y + beta


SHAPES = by_size(
    small=[(1, 7), (3, 64), (2, 3, 300), (2, 48, 13), (2, 16411)],
    full=[(1, 7), (5, 4097), (4, 2048, 4096), (2, 65537)],
)


def run(x, alpha, gamma, beta, *, dtype, rng):
    grads = ("x", "alpha", "gamma") + (("beta",) if beta is not None else ())
    return compare_with_oracle(
        LigerDyTFunction.apply,
        lambda a: dyt_oracle(a["x"], a["alpha"], a["gamma"], a["beta"]),
        {"x": x, "alpha": alpha, "gamma": gamma, "beta": beta},
        dtype=dtype,
        rng=rng,
        grads=grads,
        outputs=("y",),
        reduced=("alpha", "gamma", "beta"),
    )


def inputs(shape, dtype, device, rng, *, beta=True, alpha=0.5, layout="contiguous", scale=1.0, param_dtype=None):
    param_dtype = param_dtype or dtype
    x = make(shape, dtype, device, rng, layout=layout, scale=scale)
    alpha_t = torch.tensor([alpha], dtype=torch.float64).to(param_dtype).to(device)
    gamma = make(shape[-1:], param_dtype, device, rng, scale=0.5, shift=1.0)
    beta_t = make(shape[-1:], param_dtype, device, rng, scale=0.5) if beta else None
    return x, alpha_t, gamma, beta_t


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("beta", [True, False], ids=["beta", "no_beta"])
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, beta):
    run(*inputs(shape, liger_dtype, liger_device, liger_rng, beta=beta), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("alpha", [0.05, 1.0, 4.0, -0.8])
def test_alpha_values(liger_device, liger_dtype, liger_rng, alpha):
    """Small alpha keeps tanh linear, large alpha saturates it, a negative one flips it."""
    args = inputs((3, 5, 40), liger_dtype, liger_device, liger_rng, alpha=alpha, scale=2.0)
    run(*args, dtype=liger_dtype, rng=liger_rng)


def test_saturated(liger_device, liger_dtype, liger_rng):
    """|alpha * x| up to ~100: tanh is +-1 and its slope is near 0, exactly, not nan."""
    run(*inputs((4, 40), liger_dtype, liger_device, liger_rng, scale=50.0, alpha=2.0), dtype=liger_dtype, rng=liger_rng)


def test_float32_parameters(liger_device, liger_dtype, liger_rng):
    """Parameters kept in float32 beside activations of the tested dtype (mixed
    precision): y has the dtype of x, each gradient the dtype of its argument."""
    args = inputs((3, 50), liger_dtype, liger_device, liger_rng, param_dtype=torch.float32)
    run(*args, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, layout):
    run(*inputs((2, 3, 45), liger_dtype, liger_device, liger_rng, layout=layout), dtype=liger_dtype, rng=liger_rng)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    X, A, G, B = inputs((37, 70), liger_dtype, liger_device, liger_rng)
    dY = make((37, 70), liger_dtype, liger_device, liger_rng)

    def once():
        x, a, g, b = (t.clone().requires_grad_() for t in (X, A, G, B))
        y = LigerDyTFunction.apply(x, a, g, b)
        y.backward(dY.clone())
        return y, x.grad, a.grad, g.grad, b.grad

    run_twice_bitwise(once, "dyt")


def test_zero_width(liger_device, liger_rng):
    """DyT is elementwise, so a last dimension of 0 is well defined: an empty y,
    empty dx, dgamma and dbeta, and a zero dalpha (a sum over no elements), on every backend."""
    x, alpha, gamma, beta = (t.requires_grad_() for t in inputs((3, 0), torch.float32, liger_device, liger_rng))
    y = LigerDyTFunction.apply(x, alpha, gamma, beta)
    assert tuple(y.shape) == (3, 0)
    y.backward(torch.ones_like(y))
    assert tuple(x.grad.shape) == (3, 0) and tuple(gamma.grad.shape) == (0,) and tuple(beta.grad.shape) == (0,)
    assert torch.equal(alpha.grad, torch.zeros_like(alpha))


@pytest.mark.parametrize("case", bad_inputs.cases("dyt"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
