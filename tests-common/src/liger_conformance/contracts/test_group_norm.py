"""LigerGroupNormFunction against the float64 oracle (see liger_kernel.ops.group_norm)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import (
    compare_with_oracle,
    make,
    run_twice_bitwise,
)
from liger_kernel.ops import LigerGroupNormFunction

pytestmark = pytest.mark.liger_op("group_norm")


def oracle(x: Tensor, weight: Tensor, bias: Tensor | None, num_channels: int, num_groups: int, eps: float) -> Tensor:
    """y = (x - mean) * rstd * weight[c] + bias[c], statistics per (sample,
    group) over the group's channels and all spatial positions (biased variance)."""
    batch = x.shape[0]
    groups = x.reshape(batch, num_groups, -1)
    mean = groups.mean(dim=-1, keepdim=True)
    centered = groups - mean
    rstd = torch.rsqrt(centered.pow(2).mean(dim=-1, keepdim=True) + eps)
    normed = (centered * rstd).reshape(batch, num_channels, -1)
    y = normed * weight.view(1, num_channels, 1)
    if bias is not None:
        y = y + bias.view(1, num_channels, 1)
    return y.reshape(x.shape)


EPS = 1e-6
#: (X shape, num_groups): no, one and two spatial dimensions; one group, a group
#: per channel and in between; groups wider than one block of every Triton
#: profile (16384 elements) along the positions and along the channels
CASES = by_size(
    small=[
        ((2, 12), 3),
        ((3, 4, 10), 1),
        ((2, 6, 10), 2),
        ((2, 6, 7), 6),
        ((2, 4, 3, 5), 2),
        ((1, 3, 37), 3),
        ((1, 2, 8200), 1),
        ((2, 16400), 1),
    ],
    full=[
        ((2, 12), 3),
        ((3, 4, 10), 1),
        ((2, 6, 7), 6),
        ((1, 3, 37), 3),
        ((2, 64, 32, 32), 32),
        ((2, 320, 64, 64), 32),
        ((4, 512, 16, 16), 1),
        ((3, 65537), 1),
        ((2, 6, 70001), 2),
    ],
)


def case_id(case: tuple[tuple[int, ...], int]) -> str:
    shape, groups = case
    return f"{'x'.join(map(str, shape))}-g{groups}"


def inputs(shape, dtype, device, rng, bias=True, layout="contiguous", shift=0.0):
    X = make(shape, dtype, device, rng, layout=layout, shift=shift)
    weight = make(shape[1:2], dtype, device, rng, scale=0.5, shift=1.0)
    B = make(shape[1:2], dtype, device, rng, scale=0.5) if bias else None
    return X, weight, B


def run(X, weight, bias, num_groups, eps=EPS, *, dtype, rng, grads=None):
    if grads is None:
        grads = ("X", "weight", "bias") if bias is not None else ("X", "weight")
    return compare_with_oracle(
        LigerGroupNormFunction.apply,
        lambda a: oracle(a["X"], a["weight"], a["bias"], a["num_channels"], a["num_groups"], a["eps"]),
        {"X": X, "weight": weight, "bias": bias, "num_channels": X.shape[1], "num_groups": num_groups, "eps": eps},
        dtype=dtype,
        rng=rng,
        grads=grads,
        outputs=("Y",),
        reduced=("weight", "bias"),
    )


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_forward_backward(liger_device, liger_dtype, liger_rng, case, bias):
    shape, groups = case
    X, weight, B = inputs(shape, liger_dtype, liger_device, liger_rng, bias)
    run(X, weight, B, groups, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, layout):
    X, weight, B = inputs((2, 4, 3, 9), liger_dtype, liger_device, liger_rng, layout=layout)
    run(X, weight, B, 2, dtype=liger_dtype, rng=liger_rng)


def test_channels_last_input(liger_device, liger_dtype, liger_rng):
    X, weight, B = inputs((2, 3, 4, 6), liger_dtype, liger_device, liger_rng)
    X = X.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    assert not X.is_contiguous()
    run(X, weight, B, 3, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize(
    "grads", [("X",), ("weight", "bias"), ("bias",)], ids=["x_only", "weight_and_bias", "bias_only"]
)
def test_gradient_subsets(liger_device, liger_dtype, liger_rng, grads):
    X, weight, B = inputs((3, 4, 12), liger_dtype, liger_device, liger_rng)
    run(X, weight, B, 2, dtype=liger_dtype, rng=liger_rng, grads=grads)


def test_large_eps_and_mean(liger_device, liger_dtype, liger_rng):
    """A large mean must be removed before squaring, and eps must be honoured."""
    X, weight, B = inputs((3, 4, 11), liger_dtype, liger_device, liger_rng, shift=3.0)
    run(X, weight, B, 2, 0.5, dtype=liger_dtype, rng=liger_rng)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    X, weight, B = inputs((5, 6, 30), liger_dtype, liger_device, liger_rng)
    dY = make((5, 6, 30), liger_dtype, liger_device, liger_rng)

    def once():
        x, w, b = (t.clone().requires_grad_() for t in (X, weight, B))
        y = LigerGroupNormFunction.apply(x, w, b, 6, 3, EPS)
        y.backward(dY.clone())
        return y, x.grad, w.grad, b.grad

    run_twice_bitwise(once, "group_norm")


@pytest.mark.parametrize("case", bad_inputs.cases("group_norm"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)


def test_empty_batch(liger_device, liger_rng):
    """Zero samples are zero rows, not an error: an empty Y and dX, and zero
    dweight and dbias (sums over no samples), on every backend."""
    X, weight, bias = (t.requires_grad_() for t in inputs((0, 4, 3), torch.float32, liger_device, liger_rng))
    Y = LigerGroupNormFunction.apply(X, weight, bias, 4, 2, EPS)
    assert tuple(Y.shape) == (0, 4, 3)
    Y.backward(torch.ones_like(Y))
    assert tuple(X.grad.shape) == (0, 4, 3)
    assert torch.equal(weight.grad, torch.zeros_like(weight))
    assert torch.equal(bias.grad, torch.zeros_like(bias))
