"""LigerFusedLinearJSDFunction against a float64 oracle (see liger_kernel.ops.fused_linear_jsd).

The oracle forms both heads' logits whole, in float64, and applies the JSD
oracle of test_jsd.py; the op must agree without ever holding them whole
(test_memory_bounded_by_a_chunk)."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import (
    compare_with_oracle,
    make,
    run_twice_bitwise,
    shape_id,
    targets,
)
from liger_conformance.contracts.test_jsd import jsd_oracle, loss_scale
from liger_kernel.ops import LigerFusedLinearJSDFunction

pytestmark = pytest.mark.liger_op("fused_linear_jsd")

#: (tokens, hidden, vocab)
SHAPES = by_size(
    small=[(1, 8, 33), (6, 16, 130)],
    full=[(1, 8, 33), (6, 16, 130), (1024, 1024, 32000), (256, 512, 128 * 1024 + 7)],
)
BETAS = [0.0, 0.5, 1.0, 0.1]


def fused_linear_jsd_oracle(xs, ws, xt, wt, shift_labels=None, beta=0.5, ignore_index=-100, temperature=1.0):
    student = torch.log_softmax(xs @ ws.T / temperature, dim=-1)
    teacher = torch.log_softmax(xt @ wt.T / temperature, dim=-1)
    return jsd_oracle(student, teacher, shift_labels, beta, ignore_index)


def case(tokens, hidden, vocab, dtype, device, rng, *, teacher_hidden=None, ignored=None, layout="contiguous"):
    """The arguments of LigerFusedLinearJSDFunction.apply, by name."""
    teacher_hidden = teacher_hidden or hidden
    student_input = make((tokens, hidden), dtype, device, rng, layout=layout)
    teacher_input = make((tokens, teacher_hidden), dtype, device, rng)
    # sharper teacher than student, as in distillation
    student_weight = make((vocab, hidden), dtype, device, rng, scale=hidden**-0.5)
    teacher_weight = make((vocab, teacher_hidden), dtype, device, rng, scale=2 * teacher_hidden**-0.5)
    labels = targets(tokens, vocab, device, rng, ignored=ignored) if ignored is not None else None
    return {
        "student_input": student_input,
        "student_weight": student_weight,
        "teacher_input": teacher_input,
        "teacher_weight": teacher_weight,
        "shift_labels": labels,
        "jsd_beta": 0.5,
        "ignore_index": -100,
        "temperature": 1.0,
    }


def run(args, *, dtype, rng, non_leaf=False):
    scale = loss_scale(dtype, args["student_input"].shape[0], args["student_weight"].shape[0])
    return compare_with_oracle(
        lambda *a: LigerFusedLinearJSDFunction.apply(*a) * scale,
        lambda a: fused_linear_jsd_oracle(*a.values()) * scale,
        args,
        dtype=dtype,
        rng=rng,
        grads=("student_input", "student_weight"),
        outputs=("loss",),
        reduced=("loss", "student_weight"),
        output_dtypes={"loss": (torch.float32,)},
        non_leaf=("student_input",) if non_leaf else (),
        overwrites=LigerFusedLinearJSDFunction.overwrites,
    )


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, beta):
    args = case(*shape, liger_dtype, liger_device, liger_rng)
    args["jsd_beta"] = beta
    run(args, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize(("beta", "temperature"), [(0.0, 2.0), (0.5, 2.0), (1.0, 2.0), (0.5, 0.5)])
def test_temperature(liger_device, liger_dtype, liger_rng, beta, temperature):
    args = case(6, 16, 97, liger_dtype, liger_device, liger_rng, ignored="some")
    args.update(jsd_beta=beta, temperature=temperature)
    run(args, dtype=liger_dtype, rng=liger_rng)


#: (how labels are ignored, beta); test_temperature covers "some" with the three formulas
LABEL_CASES = [("some", 0.1), ("all", 0.5), ("all", 0.0), ("none", 1.0)]


@pytest.mark.parametrize(("ignored", "beta"), LABEL_CASES, ids=[f"{i}-{b}" for i, b in LABEL_CASES])
def test_shift_labels(liger_device, liger_dtype, liger_rng, ignored, beta):
    args = case(7, 16, 97, liger_dtype, liger_device, liger_rng, ignored=ignored)
    args["jsd_beta"] = beta
    run(args, dtype=liger_dtype, rng=liger_rng)


def test_custom_ignore_index(liger_device, liger_dtype, liger_rng):
    args = case(6, 16, 40, liger_dtype, liger_device, liger_rng)
    args["shift_labels"] = targets(6, 40, liger_device, liger_rng, ignore_index=5, dtype=torch.int32)
    args.update(ignore_index=5, jsd_beta=0.25, temperature=1.5)
    run(args, dtype=liger_dtype, rng=liger_rng)


def test_teacher_hidden_size(liger_device, liger_dtype, liger_rng):
    """A teacher with its own (larger) hidden size; only the vocabulary is shared."""
    args = case(5, 16, 97, liger_dtype, liger_device, liger_rng, teacher_hidden=40, ignored="some")
    run(args, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded_input", "transposed_weight"])
def test_non_contiguous(liger_device, liger_dtype, liger_rng, layout):
    args = case(
        5, 24, 130, liger_dtype, liger_device, liger_rng, layout="padded" if layout == "padded_input" else "contiguous"
    )
    if layout == "transposed_weight":
        # (hidden, vocab) matrices seen transposed, as tied embeddings can be
        for name in ("student_weight", "teacher_weight"):
            args[name] = args[name].T.contiguous().T
    run(args, dtype=liger_dtype, rng=liger_rng)


def test_non_leaf_student_input(liger_device, liger_dtype, liger_rng):
    args = case(6, 16, 97, liger_dtype, liger_device, liger_rng, ignored="some")
    run(args, dtype=liger_dtype, rng=liger_rng, non_leaf=True)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    args = case(7, 16, 211, liger_dtype, liger_device, liger_rng, ignored="some")

    def once():
        xs, ws = (args[name].clone().requires_grad_() for name in ("student_input", "student_weight"))
        rest = list(args.values())[2:]
        loss = LigerFusedLinearJSDFunction.apply(xs, ws, *rest)
        loss.backward(torch.tensor(1.3, dtype=loss.dtype, device=loss.device))
        return loss, xs.grad, ws.grad

    run_twice_bitwise(once, "fused_linear_jsd")


class LargestTensor(TorchDispatchMode):
    """Records the bytes of the largest tensor any op returns while active (in
    bytes: the Triton interpreter moves kernel arguments as byte views of their
    storage)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self.largest = max(self.largest, value.numel() * value.element_size())
        return out


def test_memory_bounded_by_a_chunk(liger_device, liger_rng):
    """No tensor of the whole batch's logits (tokens x vocab) exists in forward or
    backward: with hidden << vocab the chunk of logits is the largest tensor, and
    it must hold fewer rows than the batch."""
    tokens, hidden, vocab = 128, 2, 256
    args = case(tokens, hidden, vocab, torch.float32, liger_device, liger_rng, ignored="some")
    args["student_input"].requires_grad_()
    args["student_weight"].requires_grad_()
    watch = LargestTensor()
    with watch:
        loss = LigerFusedLinearJSDFunction.apply(*args.values())
        loss.backward()
    whole = tokens * vocab * torch.float32.itemsize
    assert watch.largest < whole, (
        f"a tensor of {watch.largest} bytes appeared: as large as the {tokens} x {vocab} fp32 logits of the batch"
    )
    assert args["student_input"].grad is not None and args["student_weight"].grad is not None


@pytest.mark.parametrize("case", bad_inputs.cases("fused_linear_jsd"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)


@pytest.mark.parametrize("accum_dtype", [None, torch.float32])
def test_accum_dtype_and_implementation_choice(liger_device, liger_dtype, liger_rng, liger_backend, accum_dtype):
    """0.8.5's accum_dtype (how dstudent_weight accumulates), jsd_impl and jsd_mode (consumed by the
    contract): same loss and gradients, within the dtype's tolerance."""
    args = case(6, 16, 97, liger_dtype, liger_device, liger_rng, ignored="some")
    scale = loss_scale(liger_dtype, 6, 97)
    compare_with_oracle(
        lambda *a: LigerFusedLinearJSDFunction.apply(*a, accum_dtype=accum_dtype, jsd_impl=liger_backend) * scale,
        lambda a: fused_linear_jsd_oracle(*a.values()) * scale,
        args,
        dtype=liger_dtype,
        rng=liger_rng,
        grads=("student_input", "student_weight"),
        outputs=("loss",),
        reduced=("loss", "student_weight"),
        output_dtypes={"loss": (torch.float32,)},
        overwrites=LigerFusedLinearJSDFunction.overwrites,
    )


def test_float32_accumulation_narrows_the_weight_gradient_error(liger_device, liger_dtype, liger_rng):
    """accum_dtype=float32 over half-precision weights: dstudent_weight, still in the weight's dtype,
    is closer on average to the exact gradient than the weight-dtype running sum of accum_dtype=None. 384 tokens
    over a vocabulary of 1000 make several chunks on every backend, so that running sum is rounded several times."""
    if liger_dtype not in (torch.float16, torch.bfloat16):
        pytest.skip("the accumulation dtype is about half-precision weights")
    args = case(384, 16, 1000, liger_dtype, liger_device, liger_rng)
    scale = loss_scale(liger_dtype, 384, 1000)  # as a trainer's: fp16 cannot hold the unscaled dlogits
    exact = {k: v.detach().double().cpu() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    exact["student_weight"].requires_grad_()
    (fused_linear_jsd_oracle(*exact.values()) * scale).backward()

    def weight_gradient_error(accum_dtype: torch.dtype | None) -> float:
        weight = args["student_weight"].detach().requires_grad_()
        loss = LigerFusedLinearJSDFunction.apply(*{**args, "student_weight": weight}.values(), accum_dtype=accum_dtype)
        (loss * scale).backward()
        assert weight.grad.dtype == liger_dtype
        # the mean, not the max: the final rounding to the weight's dtype bounds the max either way
        return (weight.grad.double().cpu() - exact["student_weight"].grad).abs().mean().item()

    error_float32, error_default = weight_gradient_error(torch.float32), weight_gradient_error(None)
    assert error_float32 < error_default, (
        f"mean |dW - exact|: {error_float32:.3g} accumulated in float32, {error_default:.3g} in {liger_dtype}"
    )


@pytest.mark.parametrize(
    ("option", "error", "message"),
    [
        ({"accum_dtype": torch.int32}, (TypeError, ValueError), "accum_dtype"),
        ({"jsd_mode": "cute"}, ValueError, "jsd_mode"),
        ({"jsd_impl": 3}, TypeError, "jsd_impl"),
    ],
)
def test_bad_implementation_choice(liger_device, liger_rng, option, error, message):
    args = case(2, 8, 33, torch.float32, liger_device, liger_rng)
    with pytest.raises(error, match=message):
        LigerFusedLinearJSDFunction.apply(*args.values(), **option)
