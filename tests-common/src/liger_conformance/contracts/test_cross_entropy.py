"""LigerCrossEntropyFunction against the float64 oracle (see liger_kernel.ops.cross_entropy)."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import (
    compare_with_oracle,
    make,
    run_twice_bitwise,
    shape_id,
    targets,
)
from liger_kernel.ops import LigerCrossEntropyFunction

pytestmark = pytest.mark.liger_op("cross_entropy")

#: (rows, vocab)
SHAPES = by_size(
    small=[(1, 33), (4, 257), (6, 500)],
    full=[(1, 33), (64, 32000), (8, 128 * 1024 + 7)],
)
REDUCTIONS = ["mean", "sum", "none"]
OUTPUTS = ("loss", "z_loss", "token_accuracy", "predicted_tokens")
#: the loss may come back in the input dtype or in fp32
LOSS_DTYPES = {"loss": (torch.float32,)}
#: option name -> (keyword arguments, how targets are ignored, logit scale)
OPTIONS = {
    "label_smoothing": ({"label_smoothing": 0.1}, "some", 1.0),
    "z_loss": ({"lse_square_scale": 0.05, "return_z_loss": True}, "some", 1.0),
    "softcap": ({"softcap": 4.0}, "some", 6.0),
    "weight": ({"weight": "random"}, "some", 1.0),
    "ignore_index": ({"ignore_index": 2}, "some", 1.0),
    "all_ignored": ({}, "all", 1.0),
    "none_ignored": ({}, "none", 1.0),
    "int32_target": ({"target_dtype": torch.int32}, "some", 1.0),
    "everything": (
        {
            "weight": "random",
            "ignore_index": 1,
            "lse_square_scale": 0.02,
            "label_smoothing": 0.2,
            "softcap": 5.0,
            "return_z_loss": True,
            "return_token_accuracy": True,
            "return_predicted_tokens": True,
        },
        "some",
        3.0,
    ),
}


def call_arguments(logits, target, options, device, rng):
    """The positional arguments of LigerCrossEntropyFunction.apply, by name."""
    weight = options.get("weight")
    if weight == "random":
        weight = (torch.rand(logits.shape[1], generator=rng, dtype=torch.float64) * 1.5 + 0.5).to(logits.dtype)
        weight = weight.to(device)
    return {
        "_input": logits,
        "target": target,
        "weight": weight,
        "ignore_index": options.get("ignore_index", -100),
        "lse_square_scale": options.get("lse_square_scale", 0.0),
        "label_smoothing": options.get("label_smoothing", 0.0),
        "reduction": options.get("reduction", "mean"),
        "softcap": options.get("softcap"),
        "return_z_loss": options.get("return_z_loss", False),
        "return_token_accuracy": options.get("return_token_accuracy", False),
        "return_predicted_tokens": options.get("return_predicted_tokens", False),
    }


def run(args, *, dtype, rng, non_leaf=False):
    return compare_with_oracle(
        LigerCrossEntropyFunction.apply,
        lambda a: oracles.cross_entropy(*a.values()),
        args,
        dtype=dtype,
        rng=rng,
        grads=("_input",),
        outputs=OUTPUTS,
        reduced=("loss", "z_loss") if args["reduction"] != "none" else (),
        output_dtypes=LOSS_DTYPES if dtype == torch.float32 else {"loss": (dtype, torch.float32)},
        non_leaf=("_input",) if non_leaf else (),
        overwrites=LigerCrossEntropyFunction.overwrites,
    )


def case(rows, vocab, dtype, device, rng, options, ignored="some", scale=1.0, layout="contiguous"):
    logits = make((rows, vocab), dtype, device, rng, scale=scale, layout=layout)
    ignore_index = options.get("ignore_index", -100)
    target = targets(
        rows,
        vocab,
        device,
        rng,
        ignore_index=ignore_index,
        ignored=ignored,
        dtype=options.get("target_dtype", torch.int64),
    )
    return call_arguments(logits, target, options, device, rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, reduction):
    args = case(*shape, liger_dtype, liger_device, liger_rng, {"reduction": reduction})
    run(args, dtype=liger_dtype, rng=liger_rng)


#: options whose effect depends on the reduction (divisors, per-row outputs); the others run with "mean"
BY_REDUCTION = ["label_smoothing", "z_loss", "weight", "all_ignored", "everything"]
OPTION_CASES = [(option, reduction) for option in OPTIONS for reduction in REDUCTIONS if option in BY_REDUCTION] + [
    (option, "mean") for option in OPTIONS if option not in BY_REDUCTION
]


@pytest.mark.parametrize(("option", "reduction"), OPTION_CASES, ids=[f"{o}-{r}" for o, r in OPTION_CASES])
def test_option(liger_device, liger_dtype, liger_rng, option, reduction):
    options, ignored, scale = OPTIONS[option]
    args = case(7, 131, liger_dtype, liger_device, liger_rng, {**options, "reduction": reduction}, ignored, scale)
    run(args, dtype=liger_dtype, rng=liger_rng)


NON_LEAF_CASES = [("plain", reduction) for reduction in REDUCTIONS] + [("everything", "none"), ("everything", "mean")]


@pytest.mark.parametrize(("option", "reduction"), NON_LEAF_CASES, ids=[f"{o}-{r}" for o, r in NON_LEAF_CASES])
def test_non_leaf_input(liger_device, liger_dtype, liger_rng, option, reduction):
    """Logits that are an op's output (not a leaf) may take their gradient in
    place; the loss and the gradient reaching the leaf must not change."""
    options, ignored, scale = OPTIONS[option] if option in OPTIONS else ({}, "some", 1.0)
    args = case(7, 131, liger_dtype, liger_device, liger_rng, {**options, "reduction": reduction}, ignored, scale)
    run(args, dtype=liger_dtype, rng=liger_rng, non_leaf=True)


def clear_winners(rows, vocab, dtype, device, rng, ignore_index=-100):
    """Logits with one clear maximum per row and targets that hit it on about half the rows."""
    logits = torch.randn((rows, vocab), generator=rng, dtype=torch.float64)
    winners = torch.randint(0, vocab, (rows,), generator=rng)
    logits[torch.arange(rows), winners] += 8.0
    hits = torch.rand(rows, generator=rng) < 0.5
    target = torch.where(hits, winners, torch.randint(0, vocab, (rows,), generator=rng))
    target[rows // 3] = ignore_index
    return logits.to(dtype).to(device), target.to(device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_extra_outputs(liger_device, liger_dtype, liger_rng, reduction):
    logits, target = clear_winners(9, 77, liger_dtype, liger_device, liger_rng)
    options = {
        "reduction": reduction,
        "lse_square_scale": 0.01,
        "return_z_loss": True,
        "return_token_accuracy": True,
        "return_predicted_tokens": True,
    }
    run(call_arguments(logits, target, options, liger_device, liger_rng), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, layout):
    args = case(5, 99, liger_dtype, liger_device, liger_rng, {"label_smoothing": 0.1}, layout=layout)
    run(args, dtype=liger_dtype, rng=liger_rng)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    args = case(6, 211, liger_dtype, liger_device, liger_rng, {"label_smoothing": 0.1, "lse_square_scale": 0.01})

    def once():
        x = args["_input"].clone().requires_grad_()
        loss = LigerCrossEntropyFunction.apply(x, *list(args.values())[1:])[0]
        loss.backward()
        return loss, x.grad

    run_twice_bitwise(once, "cross_entropy")


@pytest.mark.parametrize("case", bad_inputs.cases("cross_entropy"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
