"""LigerFusedLinearScaledCrossEntropyFunction against the float64 oracle (see
liger_kernel.ops.fused_linear_scaled_cross_entropy). The tensor-parallel form over
a real group of two processes is tested in liger-kernel's
tests/test_vocab_shards_distributed.py (gloo on the CPU)."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise, shape_id, targets
from liger_kernel.ops import LigerFusedLinearScaledCrossEntropyFunction

pytestmark = pytest.mark.liger_op("fused_linear_scaled_cross_entropy")

#: (tokens, hidden, vocabulary)
SHAPES = by_size(
    small=[(1, 8, 33), (7, 16, 130)],
    full=[(1, 8, 33), (512, 1024, 32000), (64, 256, 128 * 1024 + 7)],
)
OUTPUTS = ("nll", "entropy", "selected")


def case(shape, dtype, device, rng, *, ignored="some", x_layout="contiguous"):
    tokens, hidden, vocab = shape
    x = make((tokens, hidden), dtype, device, rng, layout=x_layout)
    weight = make((vocab, hidden), dtype, device, rng, scale=2 * hidden**-0.5)
    return x, weight, targets(tokens, vocab, device, rng, ignored=ignored)


def run(x, weight, target, *, temperature=1.0, return_entropy=False, selected=None, dtype, rng):
    def full_outputs(*args):
        # every output in a fixed position (None where not asked for), as the oracle gives them
        nll, *rest = (lambda out: out if isinstance(out, tuple) else (out,))(
            LigerFusedLinearScaledCrossEntropyFunction.apply(*args)
        )
        entropy = rest.pop(0) if return_entropy else None
        return nll, entropy, rest[0] if selected is not None else None

    return compare_with_oracle(
        full_outputs,
        lambda a: oracles.fused_linear_scaled_cross_entropy(
            a["_input"], a["weight"], a["target"], a["temperature"], -100, return_entropy, a["selected_token_ids"]
        ),
        {
            "_input": x,
            "weight": weight,
            "target": target,
            "temperature": temperature,
            "ignore_index": -100,
            "m_tiles_per_cluster": 1,
            "return_entropy": return_entropy,
            "selected_token_ids": selected,
        },
        dtype=dtype,
        rng=rng,
        grads=("_input", "weight"),
        outputs=OUTPUTS,
        reduced=("weight",),
        output_dtypes={name: (torch.float32, torch.float64) for name in OUTPUTS},
    )


@pytest.mark.parametrize("return_entropy", [False, True], ids=["nll", "entropy"])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, return_entropy):
    x, weight, target = case(shape, liger_dtype, liger_device, liger_rng)
    run(x, weight, target, temperature=0.8, return_entropy=return_entropy, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_temperatures(liger_device, liger_dtype, liger_rng, temperature):
    x, weight, target = case(SHAPES[1], liger_dtype, liger_device, liger_rng)
    run(x, weight, target, temperature=temperature, return_entropy=True, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("return_entropy", [False, True], ids=["nll", "entropy"])
def test_selected_token_ids(liger_device, liger_dtype, liger_rng, return_entropy):
    """Ids in order with a repeat: (M, K) log-probabilities over the whole vocabulary."""
    x, weight, target = case(SHAPES[1], liger_dtype, liger_device, liger_rng)
    selected = torch.tensor([5, 0, 129, 5], device=liger_device)
    run(x, weight, target, temperature=0.9, return_entropy=return_entropy, selected=selected,
        dtype=liger_dtype, rng=liger_rng)  # fmt: skip


@pytest.mark.parametrize("ignored", ["none", "all"])
def test_ignored_rows(liger_device, liger_dtype, liger_rng, ignored):
    x, weight, target = case(SHAPES[1], liger_dtype, liger_device, liger_rng, ignored=ignored)
    run(x, weight, target, return_entropy=True, dtype=liger_dtype, rng=liger_rng)


def test_non_contiguous_input(liger_device, liger_dtype, liger_rng):
    x, weight, target = case(SHAPES[1], liger_dtype, liger_device, liger_rng, x_layout="strided")
    run(x, weight, target, return_entropy=True, dtype=liger_dtype, rng=liger_rng)


def test_returns_as_0_8_5(liger_device, liger_rng):
    """nll alone, or a tuple of the outputs asked for, in order."""
    x, weight, target = case(SHAPES[1], torch.float32, liger_device, liger_rng)
    ids = torch.tensor([1, 2], device=liger_device)
    apply = LigerFusedLinearScaledCrossEntropyFunction.apply
    assert isinstance(apply(x, weight, target), torch.Tensor)
    assert len(apply(x, weight, target, return_entropy=True)) == 2
    _, selected = apply(x, weight, target, selected_token_ids=ids)
    assert selected.shape == (x.shape[0], 2) and selected.dtype == torch.float32
    assert len(apply(x, weight, target, 1.0, -100, 1, True, ids)) == 3


def test_deterministic(liger_device, liger_dtype, liger_rng):
    x, weight, target = case(SHAPES[1], liger_dtype, liger_device, liger_rng)

    def once():
        a, b = x.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
        nll, entropy = LigerFusedLinearScaledCrossEntropyFunction.apply(a, b, target, 0.8, -100, 1, True)
        (nll.sum() + entropy.sum()).backward()
        return nll, entropy, a.grad, b.grad

    run_twice_bitwise(once, "fused_linear_scaled_cross_entropy")


@pytest.mark.parametrize("case", bad_inputs.cases("fused_linear_scaled_cross_entropy"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
