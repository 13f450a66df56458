"""LigerSelectiveLogSoftmaxFunction and fused_selective_log_softmax against the float64
oracle (see liger_kernel.ops.grpo_loss)."""

from __future__ import annotations

import math

import pytest
import torch

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise
from liger_kernel.ops import LigerSelectiveLogSoftmaxFunction
from liger_kernel.ops.grpo_loss import fused_selective_log_softmax

pytestmark = pytest.mark.liger_op("selective_log_softmax")

#: (batch, completion length, vocabulary)
SHAPES = by_size(
    small=[(1, 1, 5), (3, 4, 33), (2, 5, 1500)],
    full=[(1, 1, 5), (4, 256, 32000), (2, 64, 128 * 1024 + 7)],
)


def inputs(shape, dtype, device, rng, *, prompt=0, layout="contiguous"):
    """Logits (B, L + 1, V), ids and a mask over ``prompt`` + L columns (the prompt's are not read)."""
    batch, length, vocab = shape
    logits = make((batch, length + 1, vocab), dtype, device, rng, scale=2.0, layout=layout)
    ids = torch.randint(0, vocab, (batch, prompt + length), generator=rng)
    mask = torch.ones(batch, prompt + length, dtype=torch.int64)
    if length > 1:
        mask[0, -1] = 0
    return logits, ids.to(device), mask.to(device)


def run(logits, ids, temperature, mask, *, dtype, rng):
    return compare_with_oracle(
        LigerSelectiveLogSoftmaxFunction.apply,
        lambda a: oracles.selective_log_softmax(a["logits"], a["input_ids"], a["temperature"], a["mask"]),
        {"logits": logits, "input_ids": ids, "temperature": temperature, "mask": mask},
        dtype=dtype,
        rng=rng,
        grads=("logits",),
        outputs=("logp",),
        output_dtypes={"logp": (torch.float32,)},
    )


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, masked):
    logits, ids, mask = inputs(shape, liger_dtype, liger_device, liger_rng, prompt=3)
    run(logits, ids, 0.9, mask if masked else None, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
def test_temperatures(liger_device, liger_dtype, liger_rng, temperature):
    logits, ids, mask = inputs(SHAPES[1], liger_dtype, liger_device, liger_rng)
    run(logits, ids, temperature, mask, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_logits(liger_device, liger_dtype, liger_rng, layout):
    logits, ids, mask = inputs(SHAPES[1], liger_dtype, liger_device, liger_rng, layout=layout)
    run(logits, ids, 0.9, mask, dtype=liger_dtype, rng=liger_rng)


def test_fused_selective_log_softmax_has_no_gradient(liger_device, liger_dtype, liger_rng):
    """0.8.5's function: the op under torch.no_grad, the same numbers."""
    logits, ids, mask = inputs(SHAPES[1], liger_dtype, liger_device, liger_rng, prompt=2)
    logits.requires_grad_()
    quiet = fused_selective_log_softmax(logits, ids, 0.8, mask)
    assert not quiet.requires_grad and quiet.dtype == torch.float32
    assert torch.equal(quiet, LigerSelectiveLogSoftmaxFunction.apply(logits, ids, 0.8, mask).detach())


def test_masked_rows_are_not_read(liger_device, liger_rng):
    """NaN logits on a masked row and on the last position give a 0 there and change nothing else."""
    logits, ids, mask = inputs(SHAPES[1], torch.float32, liger_device, liger_rng)
    clean = fused_selective_log_softmax(logits, ids, 0.9, mask)
    spoiled = logits.clone()
    spoiled[0, -2] = math.nan  # row 0's last completion token, masked
    spoiled[:, -1] = math.nan
    out = fused_selective_log_softmax(spoiled, ids, 0.9, mask)
    assert torch.equal(out, clean) and out[0, -1] == 0


def test_deterministic(liger_device, liger_dtype, liger_rng):
    logits, ids, mask = inputs(SHAPES[2], liger_dtype, liger_device, liger_rng)

    def once():
        x = logits.detach().clone().requires_grad_()
        logp = LigerSelectiveLogSoftmaxFunction.apply(x, ids, 0.9, mask)
        logp.sum().backward()
        return logp, x.grad

    run_twice_bitwise(once, "selective_log_softmax")


@pytest.mark.parametrize("case", bad_inputs.cases("selective_log_softmax"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
