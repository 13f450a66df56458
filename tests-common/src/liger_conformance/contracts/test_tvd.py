"""LigerTVDLossFunction against the float64 oracle (see liger_kernel.ops.tvd)."""

from __future__ import annotations

import math

import pytest
import torch

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import (
    compare_with_oracle,
    make,
    run_twice_bitwise,
    shape_id,
    targets,
)
from liger_kernel.ops import LigerTVDLossFunction

pytestmark = pytest.mark.liger_op("tvd")


def tvd_oracle(
    p: torch.Tensor, q: torch.Tensor, shift_labels: torch.Tensor | None, reduction: str, ignore_index: int
) -> torch.Tensor:
    """0.5 * |p - q| over the last dimension, 0 on rows whose label is
    ignore_index; "batchmean" divides the sum by the kept rows K, "mean" by
    K * V, a K of 0 counting as 1."""
    loss = 0.5 * (p - q).abs()
    rows = p.numel() // p.shape[-1]
    if shift_labels is None:
        kept_count = rows
    else:
        kept = (shift_labels.reshape(-1) != ignore_index).reshape(p.shape[:-1]).to(p.device)
        loss = torch.where(kept.unsqueeze(-1), loss, torch.zeros((), dtype=loss.dtype, device=loss.device))
        kept_count = int(kept.sum())
    kept_count = max(kept_count, 1)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / (kept_count * p.shape[-1])
    return loss.sum() / kept_count


SHAPES = by_size(
    small=[(1, 33), (4, 257), (2, 3, 100), (2, 5000)],
    full=[(1, 33), (64, 32000), (2, 16, 4097), (8, 128 * 1024 + 7), (4096, 32000)],
)
REDUCTIONS = ["none", "sum", "mean", "batchmean"]
#: the loss is float32 for every input dtype tested
LOSS_DTYPES = {"loss": (torch.float32,)}


def distribution(shape, dtype, device, rng, *, layout="contiguous"):
    """Rows of probabilities over the last dimension, in ``layout``."""
    values = torch.softmax(torch.randn(shape, generator=rng, dtype=torch.float64) * 2.0, dim=-1)
    stored = make(shape, dtype, device, rng, layout=layout)
    with torch.no_grad():
        stored.copy_(values.to(dtype))
    return stored


def labels(shape, device, rng, ignored, ignore_index=-100, dtype=torch.int64):
    """One label per row of ``shape`` (flat), none, some or all of them ignore_index."""
    rows = 1
    for size in shape[:-1]:
        rows *= size
    return targets(rows, shape[-1], device, rng, ignore_index=ignore_index, ignored=ignored, dtype=dtype)


def run(p, q, shift_labels=None, reduction="batchmean", ignore_index=-100, *, dtype, rng, grads=("p",)):
    return compare_with_oracle(
        LigerTVDLossFunction.apply,
        lambda a: tvd_oracle(a["p"], a["q"], a["shift_labels"], a["reduction"], a["ignore_index"]),
        {"p": p, "q": q, "shift_labels": shift_labels, "reduction": reduction, "ignore_index": ignore_index},
        dtype=dtype,
        rng=rng,
        grads=grads,
        outputs=("loss",),
        reduced=("loss",) if reduction != "none" else (),
        output_dtypes=LOSS_DTYPES,
        loss_scale=loss_scale(p, reduction),
    )


def loss_scale(p, reduction):
    """Under "mean" every gradient is 0.5 * g / (K * V), whatever p and q
    hold: scaled up by the power of two nearest rows * V, as float16 training
    scales its loss, it stays within float16's normal range."""
    if reduction != "mean":
        return 1.0
    return 2.0 ** round(math.log2(p.numel()))


def pair(shape, dtype, device, rng, layout="contiguous"):
    p = distribution(shape, dtype, device, rng, layout=layout)
    q = distribution(shape, dtype, device, rng, layout=layout)
    return p, q


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ignored", ["no_labels", "some"])
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, reduction, ignored):
    p, q = pair(shape, liger_dtype, liger_device, liger_rng)
    shift_labels = None if ignored == "no_labels" else labels(shape, liger_device, liger_rng, ignored)
    run(p, q, shift_labels, reduction, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ignored", ["none", "all"])
def test_all_or_no_rows_ignored(liger_device, liger_dtype, liger_rng, reduction, ignored):
    """With every row ignored the loss and the gradients are 0 (never nan)."""
    p, q = pair((5, 40), liger_dtype, liger_device, liger_rng)
    shift_labels = labels((5, 40), liger_device, liger_rng, ignored)
    loss = run(p, q, shift_labels, reduction, dtype=liger_dtype, rng=liger_rng)[0]
    if ignored == "all":
        assert not torch.isnan(loss).any() and not loss.detach().to("cpu").any()


@pytest.mark.parametrize("reduction", ["batchmean", "none"])
def test_both_inputs_get_gradients(liger_device, liger_dtype, liger_rng, reduction):
    """q takes -dl/dp when it requires grad."""
    p, q = pair((4, 300), liger_dtype, liger_device, liger_rng)
    shift_labels = labels((4, 300), liger_device, liger_rng, "some")
    run(p, q, shift_labels, reduction, dtype=liger_dtype, rng=liger_rng, grads=("p", "q"))


def test_equal_entries_have_zero_gradient(liger_device, liger_dtype, liger_rng):
    """Where p == q the gradient is 0 (the subgradient sign(0) = 0), for p and q."""
    p, q = pair((3, 64), liger_dtype, liger_device, liger_rng)
    with torch.no_grad():
        q[:, ::2] = p[:, ::2]
    run(p, q, None, "sum", dtype=liger_dtype, rng=liger_rng, grads=("p", "q"))


@pytest.mark.parametrize("label_shape", ["leading_dims", "flat"])
def test_labels_of_three_dimensional_input(liger_device, liger_dtype, liger_rng, label_shape):
    """Labels may be shaped like the leading dimensions, or flat."""
    p, q = pair((2, 3, 50), liger_dtype, liger_device, liger_rng)
    shift_labels = labels((2, 3, 50), liger_device, liger_rng, "some")
    if label_shape == "leading_dims":
        shift_labels = shift_labels.reshape(2, 3)
    run(p, q, shift_labels, "batchmean", dtype=liger_dtype, rng=liger_rng)


def test_custom_ignore_index_and_int32_labels(liger_device, liger_dtype, liger_rng):
    p, q = pair((6, 70), liger_dtype, liger_device, liger_rng)
    shift_labels = labels((6, 70), liger_device, liger_rng, "some", ignore_index=3, dtype=torch.int32)
    run(p, q, shift_labels, "batchmean", 3, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
@pytest.mark.parametrize("reduction", ["none", "batchmean"])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, layout, reduction):
    p, q = pair((2, 3, 45), liger_dtype, liger_device, liger_rng, layout=layout)
    shift_labels = labels((2, 3, 45), liger_device, liger_rng, "some")
    run(p, q, shift_labels, reduction, dtype=liger_dtype, rng=liger_rng, grads=("p", "q"))


def test_deterministic(liger_device, liger_dtype, liger_rng):
    p, q = pair((5, 700), liger_dtype, liger_device, liger_rng)
    shift_labels = labels((5, 700), liger_device, liger_rng, "some")

    def once():
        x = p.clone().requires_grad_()
        loss = LigerTVDLossFunction.apply(x, q, shift_labels, "batchmean", -100)
        loss.backward()
        return loss, x.grad

    run_twice_bitwise(once, "tvd")


@pytest.mark.parametrize("case", bad_inputs.cases("tvd"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
