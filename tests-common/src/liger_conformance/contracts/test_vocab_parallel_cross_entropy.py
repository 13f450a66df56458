"""LigerVocabParallelCEFunction on one shard (no process group) against the float64
oracle (see liger_kernel.ops.vocab_parallel_cross_entropy). The all-reduces over
a real group of two processes are tested in liger-kernel's
tests/test_vocab_shards_distributed.py (gloo on the CPU)."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise, shape_id, targets
from liger_kernel.ops import LigerVocabParallelCEFunction
from liger_kernel.transformers import LigerVocabParallelCrossEntropy

pytestmark = pytest.mark.liger_op("vocab_parallel_cross_entropy")

#: (seq, batch, vocabulary)
SHAPES = by_size(
    small=[(1, 1, 5), (3, 2, 33), (2, 3, 1500)],
    full=[(1, 1, 5), (512, 8, 32000), (64, 2, 128 * 1024 + 7)],
)
SMOOTHING = [(0.0, "pytorch"), (0.1, "pytorch"), (0.2, "megatron")]


def case(shape, dtype, device, rng, *, layout="contiguous", ignored="some"):
    seq, batch, vocab = shape
    logits = make(shape, dtype, device, rng, scale=3.0, layout=layout)
    target = targets(seq * batch, vocab, device, rng, ignored=ignored).view(seq, batch)
    return logits, target


def run(logits, target, alpha, formula, mode="global", *, dtype, rng, non_leaf=False):
    return compare_with_oracle(
        LigerVocabParallelCEFunction.apply,
        lambda a: oracles.vocab_parallel_cross_entropy(
            a["vocab_parallel_logits"], a["target"], -100, a["label_smoothing"], a["label_smoothing_formula"]
        ),
        {
            "vocab_parallel_logits": logits,
            "target": target,
            "tp_group": None,
            "ignore_index": -100,
            "label_smoothing": alpha,
            "label_smoothing_formula": formula,
            "label_smoothing_mode": mode,
        },
        dtype=dtype,
        rng=rng,
        grads=("vocab_parallel_logits",),
        outputs=("loss",),
        output_dtypes={"loss": (torch.float32, torch.float64)},
        non_leaf=("vocab_parallel_logits",) if non_leaf else (),
        overwrites=LigerVocabParallelCEFunction.overwrites,
    )


@pytest.mark.parametrize("smoothing", SMOOTHING, ids=lambda s: f"{s[1]}-{s[0]}")
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, smoothing):
    logits, target = case(shape, liger_dtype, liger_device, liger_rng)
    run(logits, target, *smoothing, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("mode", ["global", "partition"])
def test_modes_agree_on_one_shard(liger_device, liger_dtype, liger_rng, mode):
    logits, target = case(SHAPES[1], liger_dtype, liger_device, liger_rng)
    run(logits, target, 0.1, "megatron", mode, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_logits(liger_device, liger_dtype, liger_rng, layout):
    logits, target = case(SHAPES[1], liger_dtype, liger_device, liger_rng, layout=layout)
    run(logits, target, 0.1, "pytorch", dtype=liger_dtype, rng=liger_rng)


def test_non_leaf_logits(liger_device, liger_dtype, liger_rng):
    """The LM head's output: the gradient may be written over it (``overwrites``)."""
    logits, target = case(SHAPES[1], liger_dtype, liger_device, liger_rng)
    run(logits, target, 0.0, "pytorch", dtype=liger_dtype, rng=liger_rng, non_leaf=True)


@pytest.mark.parametrize("ignored", ["none", "all"])
def test_ignored_rows(liger_device, liger_dtype, liger_rng, ignored):
    logits, target = case(SHAPES[1], liger_dtype, liger_device, liger_rng, ignored=ignored)
    run(logits, target, 0.1, "pytorch", dtype=liger_dtype, rng=liger_rng)


def test_matches_torch_cross_entropy(liger_device, liger_rng):
    """The "pytorch" formula is torch's own label smoothing, per token."""
    logits, target = case(SHAPES[1], torch.float32, liger_device, liger_rng)
    loss = LigerVocabParallelCrossEntropy(label_smoothing=0.1)(logits, target)
    vocab = logits.shape[-1]
    stock = torch.nn.functional.cross_entropy(
        logits.reshape(-1, vocab), target.reshape(-1), reduction="none", label_smoothing=0.1
    )
    torch.testing.assert_close(loss.reshape(-1), stock, rtol=1e-5, atol=1e-5)


def test_module_refuses_a_reduction():
    with pytest.raises(ValueError, match="reduction"):
        LigerVocabParallelCrossEntropy(reduction="mean")


def test_deterministic(liger_device, liger_dtype, liger_rng):
    logits, target = case(SHAPES[2], liger_dtype, liger_device, liger_rng)

    def once():
        x = logits.detach().clone().requires_grad_()
        loss = LigerVocabParallelCEFunction.apply(x, target, None, -100, 0.1, "pytorch", "global")
        loss.sum().backward()
        return loss, x.grad

    run_twice_bitwise(once, "vocab_parallel_cross_entropy")


@pytest.mark.parametrize("case", bad_inputs.cases("vocab_parallel_cross_entropy"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
