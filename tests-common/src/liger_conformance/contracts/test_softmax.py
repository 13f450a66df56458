"""LigerSoftmaxFunction against the float64 oracle (see liger_kernel.ops.softmax)."""

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
from liger_kernel.ops import LigerSoftmaxFunction

pytestmark = pytest.mark.liger_op("softmax")


def softmax_oracle(x: torch.Tensor) -> torch.Tensor:
    """exp(x - max(x)) / sum(exp(x - max(x))) over the last dimension."""
    exponentials = torch.exp(x - x.amax(dim=-1, keepdim=True))
    return exponentials / exponentials.sum(dim=-1, keepdim=True)


#: 16411 is wider than one block of every device profile (16384 on GPUs, 4096
#: on the NPU), so the rows are walked in blocks
SHAPES = by_size(
    small=[(1, 7), (3, 64), (2, 3, 300), (2, 16411)],
    full=[(1, 7), (5, 4097), (2, 16, 8192), (64, 32000), (4, 128 * 1024 + 7)],
)


def run(x, *, dtype, rng, grads=("x",)):
    return compare_with_oracle(
        LigerSoftmaxFunction.apply,
        lambda a: softmax_oracle(a["x"]),
        {"x": x},
        dtype=dtype,
        rng=rng,
        grads=grads,
        outputs=("y",),
    )


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape):
    run(make(shape, liger_dtype, liger_device, liger_rng, scale=2.0), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, layout):
    run(make((2, 3, 45), liger_dtype, liger_device, liger_rng, layout=layout), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize(("scale", "shift"), [(30.0, 0.0), (1.0, 1000.0)], ids=["peaked", "shifted"])
def test_large_magnitude(liger_device, liger_dtype, liger_rng, scale, shift):
    """Large spreads saturate exp and large offsets must cancel: the maximum is subtracted first.

    The backward reads y as the forward stored it. A bfloat16 probability
    near 1 carries a rounding error (2**-9) as large as the gradient of a
    peaked row itself, so there only the forward is compared."""
    x = make((4, 129), liger_dtype, liger_device, liger_rng, scale=scale, shift=shift)
    peaked_bfloat16 = scale > 1 and liger_dtype == torch.bfloat16
    run(x, dtype=liger_dtype, rng=liger_rng, grads=() if peaked_bfloat16 else ("x",))


@pytest.mark.parametrize("width", [77, 16411], ids=["one_block", "blocks"])
def test_masked_scores(liger_device, liger_dtype, liger_rng, width):
    """-inf scores (attention masks) get probability 0 and gradient 0, also when
    the whole leading part of a row, wider than a block, is -inf."""
    x = make((3, width), liger_dtype, liger_device, liger_rng)
    x[0, : width - 5] = -float("inf")
    x[1, 3:] = -float("inf")
    x[2, ::2] = -float("inf")
    run(x, dtype=liger_dtype, rng=liger_rng)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    X = make((5, 70), liger_dtype, liger_device, liger_rng)
    dY = make((5, 70), liger_dtype, liger_device, liger_rng)

    def once():
        x = X.clone().requires_grad_()
        y = LigerSoftmaxFunction.apply(x)
        y.backward(dY.clone())
        return y, x.grad

    run_twice_bitwise(once, "softmax")


@pytest.mark.parametrize("case", bad_inputs.cases("softmax"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
