"""LigerFusedLinearCrossEntropyFunction against the float64 oracle
(see liger_kernel.ops.fused_linear_cross_entropy)."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import (
    compare_with_oracle,
    make,
    run_twice_bitwise,
    shape_id,
    targets,
)
from liger_kernel.ops import LigerFusedLinearCrossEntropyFunction

pytestmark = pytest.mark.liger_op("fused_linear_cross_entropy")

#: (tokens, hidden, vocab)
SHAPES = by_size(
    small=[(1, 8, 33), (5, 16, 130)],
    full=[(1, 8, 33), (512, 1024, 32000), (64, 256, 128 * 1024 + 7)],
)
REDUCTIONS = ["mean", "sum", "none"]
OUTPUTS = ("loss", "z_loss", "token_accuracy", "predicted_tokens")
#: option name -> (keyword arguments, how targets are ignored), with every reduction.
#: The loss options are the cross-entropy's, tested there with every reduction;
#: here each is tested once more through the fused path (MEAN_OPTIONS).
OPTIONS = {
    "all_ignored": ({"bias": True, "ce_weight": True}, "all"),
    "everything": (
        {
            "bias": True,
            "ce_weight": True,
            "ignore_index": 3,
            "lse_square_scale": 0.02,
            "label_smoothing": 0.2,
            "softcap": 3.0,
            "return_z_loss": True,
            "accum_dtype": torch.float32,
            "return_token_accuracy": True,
            "return_predicted_tokens": True,
        },
        "some",
    ),
}
#: options tested with the mean reduction only
MEAN_OPTIONS = {
    "bias": ({"bias": True}, "some"),
    "ce_weight": ({"ce_weight": True}, "some"),
    "label_smoothing": ({"label_smoothing": 0.1}, "some"),
    "z_loss": ({"lse_square_scale": 0.05, "return_z_loss": True}, "some"),
    "softcap": ({"softcap": 2.0}, "some"),
    "ignore_index": ({"ignore_index": 0}, "some"),
    "none_ignored": ({}, "none"),
    "accum_dtype": ({"accum_dtype": torch.float32, "bias": True}, "some"),
    "token_scaling": ({"use_token_scaling": True}, "some"),
    "extra_outputs": ({"return_token_accuracy": True, "return_predicted_tokens": True}, "some"),
}


def call_arguments(x, weight, target, options, device, rng):
    """The positional arguments of LigerFusedLinearCrossEntropyFunction.apply, by name."""
    vocab = weight.shape[0]
    bias = make((vocab,), weight.dtype, device, rng, scale=0.5) if options.get("bias") else None
    ce_weight = None
    if options.get("ce_weight"):
        ce_weight = (torch.rand(vocab, generator=rng, dtype=torch.float64) * 1.5 + 0.5).to(weight.dtype).to(device)
    return {
        "_input": x,
        "weight": weight,
        "target": target,
        "bias": bias,
        "ce_weight": ce_weight,
        "ignore_index": options.get("ignore_index", -100),
        "lse_square_scale": options.get("lse_square_scale", 0.0),
        "label_smoothing": options.get("label_smoothing", 0.0),
        "reduction": options.get("reduction", "mean"),
        "softcap": options.get("softcap"),
        "return_z_loss": options.get("return_z_loss", False),
        "accum_dtype": options.get("accum_dtype"),
        "use_token_scaling": options.get("use_token_scaling", False),
        "return_token_accuracy": options.get("return_token_accuracy", False),
        "return_predicted_tokens": options.get("return_predicted_tokens", False),
    }


def case(tokens, hidden, vocab, dtype, device, rng, options, ignored="some", x_layout="contiguous", weight_t=False):
    x = make((tokens, hidden), dtype, device, rng, layout=x_layout)
    if weight_t:
        # a (hidden, vocab) matrix seen transposed, as a tied embedding can be
        weight = make((hidden, vocab), dtype, device, rng, scale=hidden**-0.5).T
    else:
        weight = make((vocab, hidden), dtype, device, rng, scale=hidden**-0.5)
    target = targets(tokens, vocab, device, rng, ignore_index=options.get("ignore_index", -100), ignored=ignored)
    return call_arguments(x, weight, target, options, device, rng)


def run(args, *, dtype, rng, non_leaf=False):
    grads = ("_input", "weight") + (("bias",) if args["bias"] is not None else ())
    return compare_with_oracle(
        LigerFusedLinearCrossEntropyFunction.apply,
        lambda a: oracles.fused_linear_cross_entropy(*a.values()),
        args,
        dtype=dtype,
        rng=rng,
        grads=grads,
        outputs=OUTPUTS,
        reduced=("weight", "bias") + (("loss", "z_loss") if args["reduction"] != "none" else ()),
        output_dtypes={"loss": (dtype, torch.float32)},
        non_leaf=("_input",) if non_leaf else (),
        overwrites=LigerFusedLinearCrossEntropyFunction.overwrites,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, reduction):
    run(case(*shape, liger_dtype, liger_device, liger_rng, {"reduction": reduction}), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("option", list(OPTIONS))
def test_option(liger_device, liger_dtype, liger_rng, option, reduction):
    options, ignored = OPTIONS[option]
    args = case(6, 16, 97, liger_dtype, liger_device, liger_rng, {**options, "reduction": reduction}, ignored)
    run(args, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("option", list(MEAN_OPTIONS))
def test_option_mean(liger_device, liger_dtype, liger_rng, option):
    options, ignored = MEAN_OPTIONS[option]
    args = case(6, 16, 97, liger_dtype, liger_device, liger_rng, options, ignored)
    if option == "extra_outputs":
        # one clear winner per row, so argmax and accuracy do not hinge on rounding
        winners = torch.randint(0, 97, (6,), generator=liger_rng)
        args["bias"] = torch.zeros(97, dtype=liger_dtype).index_fill(0, winners, 12.0).to(liger_device)
    run(args, dtype=liger_dtype, rng=liger_rng)


def _half_precision_case(liger_dtype, liger_device, liger_rng, accum_dtype):
    """1024 tokens: many chunks on every backend, so a half-precision running
    sum of dweight is rounded many times; a vocabulary of 1000 gives the weight
    a shape no other tensor of the op has."""
    if liger_dtype not in (torch.float16, torch.bfloat16):
        pytest.skip("the accumulation rule is about half-precision weights")
    args = case(1024, 16, 1000, liger_dtype, liger_device, liger_rng, {}, "none")
    args["weight"] = args["weight"].detach().requires_grad_()
    args["accum_dtype"] = accum_dtype
    return args


def test_float32_accumulation_bounds_the_weight_gradient(liger_device, liger_dtype, liger_rng):
    """accum_dtype=float32: |dweight - exact| within one spacing of the dtype
    (relative to the largest entry) however many chunks a backend walks."""
    args = _half_precision_case(liger_dtype, liger_device, liger_rng, torch.float32)
    weight = args["weight"]
    loss, *_ = LigerFusedLinearCrossEntropyFunction.apply(*args.values())
    loss.backward()
    assert weight.grad.dtype == liger_dtype
    x64 = args["_input"].detach().double().cpu()
    w64 = weight.detach().double().cpu().requires_grad_()
    torch.nn.functional.cross_entropy(x64 @ w64.T, args["target"].cpu()).backward()
    error = (weight.grad.double().cpu() - w64.grad).abs().max()
    bound = torch.finfo(liger_dtype).eps * w64.grad.abs().max()
    assert error <= bound, f"max |dW - exact| = {error:.3g} > {bound:.3g} (one {liger_dtype} spacing of max |dW|)"


class _Float32Buffers(TorchDispatchMode):
    """The shapes of the float32 tensors aten ops return in new storage."""

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        inputs = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        existing = {t.untyped_storage().data_ptr() for t in inputs}
        out = func(*args, **(kwargs or {}))
        for value in torch.utils._pytree.tree_leaves(out):
            if (
                isinstance(value, torch.Tensor)
                and value.dtype == torch.float32
                and value.untyped_storage().data_ptr() not in existing
            ):
                self.shapes.append(tuple(value.shape))
        return out


def test_default_accumulation_keeps_the_weight_dtype(liger_device, liger_dtype, liger_rng):
    """accum_dtype=None accumulates dweight in the weight's dtype: no float32
    buffer of the weight's shape is made, forward or backward."""
    args = _half_precision_case(liger_dtype, liger_device, liger_rng, None)
    weight = args["weight"]
    with _Float32Buffers() as buffers:
        loss, *_ = LigerFusedLinearCrossEntropyFunction.apply(*args.values())
        loss.backward()
    assert weight.grad.dtype == liger_dtype
    assert tuple(weight.shape) not in buffers.shapes, (
        f"a float32 buffer of the weight's shape {tuple(weight.shape)}: accum_dtype=None must accumulate "
        "the weight gradient in the weight's dtype"
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_non_leaf_input(liger_device, liger_dtype, liger_rng, reduction):
    """Hidden states that are an op's output (not a leaf), as in a model."""
    args = case(6, 16, 97, liger_dtype, liger_device, liger_rng, {"bias": True, "reduction": reduction})
    run(args, dtype=liger_dtype, rng=liger_rng, non_leaf=True)


@pytest.mark.parametrize("layout", ["padded_input", "transposed_weight"])
def test_non_contiguous_inputs(liger_device, liger_dtype, liger_rng, layout):
    args = case(
        5,
        24,
        130,
        liger_dtype,
        liger_device,
        liger_rng,
        {"bias": True},
        x_layout="padded" if layout == "padded_input" else "contiguous",
        weight_t=layout == "transposed_weight",
    )
    run(args, dtype=liger_dtype, rng=liger_rng)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    args = case(7, 16, 211, liger_dtype, liger_device, liger_rng, {"bias": True, "label_smoothing": 0.1})

    def once():
        x, w, b = (args[name].clone().requires_grad_() for name in ("_input", "weight", "bias"))
        rest = list(args.values())[4:]
        loss = LigerFusedLinearCrossEntropyFunction.apply(x, w, args["target"], b, *rest)[0]
        loss.backward()
        return loss, x.grad, w.grad, b.grad

    run_twice_bitwise(once, "fused_linear_cross_entropy")


@pytest.mark.parametrize("case", bad_inputs.cases("fused_linear_cross_entropy"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
