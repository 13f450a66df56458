"""LigerSparsemaxFunction against the float64 oracle (see liger_kernel.ops.sparsemax)."""

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
from liger_kernel.ops import LigerSparsemaxFunction

pytestmark = pytest.mark.liger_op("sparsemax")


def sparsemax_oracle(x: torch.Tensor, dim: int) -> torch.Tensor:
    """max(x - tau, 0) along ``dim`` with tau such that the result sums to 1.

    tau comes from the sorted values (the support is the largest k with
    1 + k * s_k > s_1 + ... + s_k); the result is then written as (x - tau(S))
    on the support S with S held fixed, so autograd yields the sparsemax
    Jacobian: dy - mean over S of dy on S, 0 elsewhere.
    """
    z = x.movedim(dim, -1)
    ordered = z.sort(dim=-1, descending=True).values
    cumulative = ordered.cumsum(dim=-1)
    ranks = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype, device=z.device)
    size = ((1 + ranks * ordered > cumulative) * ranks).amax(dim=-1, keepdim=True)
    tau = (cumulative.gather(-1, size.long() - 1) - 1) / size
    support = (z > tau).detach()
    tau = ((z * support).sum(dim=-1, keepdim=True) - 1) / support.sum(dim=-1, keepdim=True)
    return ((z - tau) * support).movedim(-1, dim)


#: (shape, dim); 16411 is wider than one block of every device profile
CASES = by_size(
    small=[((1, 7), -1), ((3, 64), -1), ((2, 3, 300), -1), ((2, 16411), -1)],
    full=[((1, 7), -1), ((5, 4097), -1), ((2, 16, 8192), -1), ((64, 32000), -1), ((4, 128 * 1024 + 7), -1)],
)


def run(x, dim=-1, *, dtype, rng):
    return compare_with_oracle(
        LigerSparsemaxFunction.apply,
        lambda a: sparsemax_oracle(a["x"], a["dim"]),
        {"x": x, "dim": dim},
        dtype=dtype,
        rng=rng,
        grads=("x",),
        outputs=("y",),
    )


@pytest.mark.parametrize(("shape", "dim"), CASES, ids=[shape_id(shape) for shape, _ in CASES])
@pytest.mark.parametrize("scale", [0.05, 1.0], ids=["wide_support", "narrow_support"])
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, dim, scale):
    run(make(shape, liger_dtype, liger_device, liger_rng, scale=scale), dim, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2, -3])
def test_every_dim(liger_device, liger_dtype, liger_rng, dim):
    x = make((6, 5, 7), liger_dtype, liger_device, liger_rng, scale=0.3)
    run(x, dim, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize(("layout", "dim"), [("padded", -1), ("strided", -1), ("strided", 1)])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, layout, dim):
    x = make((2, 9, 20), liger_dtype, liger_device, liger_rng, scale=0.3, layout=layout)
    run(x, dim, dtype=liger_dtype, rng=liger_rng)


def test_ties(liger_device, liger_dtype, liger_rng):
    """Tied values inside the support, tied values outside it, a row of equal
    values (all in the support, 1/n each), and values exactly at the threshold
    (last row: tau = (1 + 0.875 + 0.625 - 1) / 3 = 0.5, so the three 0.5 get
    y = 0 and gradient 0, however tau's division rounds); all exact in every dtype."""
    rows = [
        [0.5] * 9,
        [2.0, 2.0, 2.0, 1.5, -1.0, -1.0, -3.0, 0.25, 0.25],
        [1.0, 0.75, 0.75, -2.0, -2.0, -2.0, -2.0, 0.5, 1.0],
        [1.0, 0.875, 0.625, 0.5, 0.5, 0.125, -2.0, 0.5, 0.0],
    ]
    x = torch.tensor(rows, dtype=torch.float64).to(liger_dtype).to(liger_device)
    run(x, dtype=liger_dtype, rng=liger_rng)


def test_single_support_element(liger_device, liger_dtype, liger_rng):
    """A top value more than 1 above the rest takes all the mass; its gradient is 0."""
    x = make((4, 33), liger_dtype, liger_device, liger_rng, scale=0.2)
    x[torch.arange(4), torch.tensor([0, 7, 32, 16])] = 3.0
    y = run(x, dtype=liger_dtype, rng=liger_rng)[0]
    assert int((y > 0).sum()) == 4


@pytest.mark.parametrize(
    ("scale", "shift"), [(1000.0, 0.0), (1.0, 1.0e4), (0.01, -300.0)], ids=["spread", "shifted", "close"]
)
def test_large_magnitude(liger_device, liger_dtype, liger_rng, scale, shift):
    """Large spreads and offsets: the row maximum is subtracted before any sum."""
    run(
        make((4, 129), liger_dtype, liger_device, liger_rng, scale=scale, shift=shift), dtype=liger_dtype, rng=liger_rng
    )


def test_sums_to_one(liger_device, liger_dtype, liger_rng):
    x = make((6, 300), liger_dtype, liger_device, liger_rng, scale=0.1)
    y = LigerSparsemaxFunction.apply(x, -1).to(torch.float64)
    assert (y >= 0).all()
    # each output is rounded to the dtype once (relative error eps / 2), so the
    # sum is 1 within eps, plus the fp32 rounding of the threshold
    tolerance = torch.finfo(liger_dtype).eps + 1e-5
    torch.testing.assert_close(y.sum(-1).cpu(), torch.ones(6, dtype=torch.float64), atol=tolerance, rtol=0.0)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    X = make((5, 70), liger_dtype, liger_device, liger_rng, scale=0.2)
    dY = make((5, 70), liger_dtype, liger_device, liger_rng)

    def once():
        x = X.clone().requires_grad_()
        y = LigerSparsemaxFunction.apply(x, -1)
        y.backward(dY.clone())
        return y, x.grad

    run_twice_bitwise(once, "sparsemax")


@pytest.mark.parametrize("case", bad_inputs.cases("sparsemax"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
