"""LigerKLDivLossFunction against the float64 oracle (see liger_kernel.ops.kl_div)."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import (
    compare_with_oracle,
    make,
    raises_naming,
    run_twice_bitwise,
    shape_id,
)
from liger_kernel.ops import LigerKLDivLossFunction

pytestmark = pytest.mark.liger_op("kl_div")


def kl_div_oracle(
    y_pred: torch.Tensor, y_true: torch.Tensor, reduction: str, log_target: bool, eps: float
) -> torch.Tensor:
    """Pointwise y_true * (log(max(y_true, eps)) - y_pred), or exp(y_true) *
    (y_true - y_pred) for log-space targets, reduced as torch.nn.functional.kl_div
    reduces ("batchmean": divided by the first dimension)."""
    if log_target:
        loss = y_true.exp() * (y_true - y_pred)
    else:
        loss = y_true * (y_true.clamp(min=eps).log() - y_pred)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / loss.numel()
    return loss.sum() / loss.shape[0]


SHAPES = by_size(
    small=[(1, 33), (4, 257), (2, 3, 100), (2, 5000)],
    full=[(1, 33), (64, 32000), (2, 16, 4097), (8, 128 * 1024 + 7), (4096, 32000)],
)
REDUCTIONS = ["none", "sum", "mean", "batchmean"]
EPS = 1e-10
#: the loss is float32 for every input dtype tested
LOSS_DTYPES = {"loss": (torch.float32,)}


def distribution(shape, dtype, device, rng, *, log, layout="contiguous", zeros=False, mass=1.0):
    """Rows of probabilities (log-probabilities with ``log``) over the last
    dimension, summing to ``mass``, in ``layout``; ``zeros`` sets every fifth
    value to 0. The op never assumes normalized rows, so neither do the tests."""
    values = torch.softmax(torch.randn(shape, generator=rng, dtype=torch.float64) * 2.0, dim=-1) * mass
    if zeros:
        values[..., ::5] = 0.0
    if log:
        values = values.log()
    stored = make(shape, dtype, device, rng, layout=layout)
    with torch.no_grad():
        stored.copy_(values.to(dtype))
    return stored


def run(y_pred, y_true, reduction="batchmean", log_target=False, eps=EPS, *, dtype, rng):
    return compare_with_oracle(
        LigerKLDivLossFunction.apply,
        lambda a: kl_div_oracle(a["y_pred"], a["y_true"], a["reduction"], a["log_target"], a["eps"]),
        {"y_pred": y_pred, "y_true": y_true, "reduction": reduction, "log_target": log_target, "eps": eps},
        dtype=dtype,
        rng=rng,
        grads=("y_pred",),
        outputs=("loss",),
        reduced=("loss",) if reduction != "none" else (),
        output_dtypes=LOSS_DTYPES,
    )


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_target", [False, True], ids=["prob_target", "log_target"])
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, reduction, log_target):
    y_pred = distribution(shape, liger_dtype, liger_device, liger_rng, log=True)
    # "mean" divides the gradient -y_true by every element: with targets of
    # mass V it is as large as under "batchmean", not below float16's range
    mass = shape[-1] if reduction == "mean" else 1.0
    y_true = distribution(shape, liger_dtype, liger_device, liger_rng, log=log_target, mass=mass)
    run(y_pred, y_true, reduction, log_target, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps", [EPS, 1e-3], ids=["default_eps", "large_eps"])
def test_zero_targets_and_eps(liger_device, liger_dtype, liger_rng, reduction, eps):
    """Zero probabilities contribute 0 (not nan), and targets below eps are
    measured against log(eps): with eps = 1e-3 most of a 300-wide row is."""
    y_pred = distribution((3, 300), liger_dtype, liger_device, liger_rng, log=True)
    y_true = distribution((3, 300), liger_dtype, liger_device, liger_rng, log=False, zeros=True)
    loss = run(y_pred, y_true, reduction, False, eps, dtype=liger_dtype, rng=liger_rng)[0]
    assert not torch.isnan(loss).any()


def test_one_dimensional_input(liger_device, liger_dtype, liger_rng):
    """A single distribution of shape (V,): "batchmean" divides by V, as torch does."""
    y_pred = distribution((70,), liger_dtype, liger_device, liger_rng, log=True)
    y_true = distribution((70,), liger_dtype, liger_device, liger_rng, log=False)
    for reduction in REDUCTIONS:
        run(y_pred, y_true, reduction, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
@pytest.mark.parametrize("reduction", ["none", "batchmean"])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, layout, reduction):
    y_pred = distribution((2, 3, 45), liger_dtype, liger_device, liger_rng, log=True, layout=layout)
    y_true = distribution((2, 3, 45), liger_dtype, liger_device, liger_rng, log=False, layout=layout)
    run(y_pred, y_true, reduction, dtype=liger_dtype, rng=liger_rng)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    y_pred = distribution((5, 700), liger_dtype, liger_device, liger_rng, log=True)
    y_true = distribution((5, 700), liger_dtype, liger_device, liger_rng, log=False)

    def once():
        y = y_pred.clone().requires_grad_()
        loss = LigerKLDivLossFunction.apply(y, y_true, "batchmean", False, EPS)
        loss.backward()
        return loss, y.grad

    run_twice_bitwise(once, "kl_div")


def test_target_gets_no_gradient(liger_device, liger_rng):
    """y_true that requires grad is refused while autograd records, and
    accepted under torch.no_grad()."""
    y_pred = distribution((2, 8), torch.float32, liger_device, liger_rng, log=True).requires_grad_()
    y_true = distribution((2, 8), torch.float32, liger_device, liger_rng, log=False).requires_grad_()
    with raises_naming(ValueError, "y_true"):
        LigerKLDivLossFunction.apply(y_pred, y_true)
    with torch.no_grad():
        loss = LigerKLDivLossFunction.apply(y_pred, y_true)
    expected = kl_div_oracle(y_pred.double(), y_true.double(), "batchmean", False, EPS)
    assert abs(loss.item() - expected.item()) <= 1e-5 * max(1.0, abs(expected.item()))


@pytest.mark.parametrize("case", bad_inputs.cases("kl_div"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
