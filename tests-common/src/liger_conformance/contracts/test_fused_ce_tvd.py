"""LigerFusedCETVDFunction against a float64 oracle (see liger_kernel.ops.fused_ce_tvd)."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise, shape_id, targets
from liger_kernel.ops import LigerFusedCETVDFunction

pytestmark = pytest.mark.liger_op("fused_ce_tvd")

#: (rows, vocab)
SHAPES = by_size(
    small=[(1, 33), (7, 130), (3, 5000)],
    full=[(1, 33), (7, 130), (3, 5000), (512, 32000), (64, 128 * 1024 + 7)],
)


def fused_ce_tvd_oracle(student_logits, teacher_logits, target, ignore_index=-100):
    kept = target != ignore_index
    ce = torch.nn.functional.cross_entropy(student_logits, torch.where(kept, target, 0).long(), reduction="none")
    p, q = torch.softmax(student_logits, dim=-1), torch.softmax(teacher_logits, dim=-1)
    tvd = 0.5 * (p - q).abs().sum(dim=-1)
    return torch.where(kept, ce, 0.0), torch.where(kept, tvd, 0.0)


def case(rows, vocab, dtype, device, rng, *, ignored="some", layout="contiguous"):
    return {
        "student_logits": make((rows, vocab), dtype, device, rng, scale=2.0, layout=layout),
        "teacher_logits": make((rows, vocab), dtype, device, rng, scale=3.0, layout=layout),
        "target": targets(rows, vocab, device, rng, ignored=ignored),
        "ignore_index": -100,
    }


def run(args, *, dtype, rng, non_leaf=False):
    return compare_with_oracle(
        LigerFusedCETVDFunction.apply,
        lambda a: fused_ce_tvd_oracle(*a.values()),
        args,
        dtype=dtype,
        rng=rng,
        grads=("student_logits",),
        outputs=("ce", "tvd"),
        reduced=("ce", "tvd"),
        output_dtypes={"ce": (torch.float32, torch.float64), "tvd": (torch.float32, torch.float64)},
        non_leaf=("student_logits",) if non_leaf else (),
    )


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape):
    run(case(*shape, liger_dtype, liger_device, liger_rng), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("ignored", ["none", "all"])
def test_ignored_rows(liger_device, liger_dtype, liger_rng, ignored):
    run(case(6, 97, liger_dtype, liger_device, liger_rng, ignored=ignored), dtype=liger_dtype, rng=liger_rng)


def test_custom_ignore_index(liger_device, liger_dtype, liger_rng):
    args = case(6, 40, liger_dtype, liger_device, liger_rng)
    args["target"] = targets(6, 40, liger_device, liger_rng, ignore_index=5, dtype=torch.int32)
    args["ignore_index"] = 5
    run(args, dtype=liger_dtype, rng=liger_rng)


def test_identical_distributions(liger_device, liger_dtype, liger_rng):
    """Teacher = student: TVD is 0 and every sign a tie, so its gradient is 0 (torch.abs's at 0)."""
    args = case(5, 64, liger_dtype, liger_device, liger_rng)
    args["teacher_logits"] = args["student_logits"].clone()
    run(args, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous(liger_device, liger_dtype, liger_rng, layout):
    run(case(5, 130, liger_dtype, liger_device, liger_rng, layout=layout), dtype=liger_dtype, rng=liger_rng)


def test_non_leaf_student_logits(liger_device, liger_dtype, liger_rng):
    run(case(6, 97, liger_dtype, liger_device, liger_rng), dtype=liger_dtype, rng=liger_rng, non_leaf=True)


def test_one_term_differentiated(liger_device, liger_dtype, liger_rng):
    """A loss over the CE alone (the TVD's gradient arrives as None) and over the TVD alone."""
    args = case(6, 97, liger_dtype, liger_device, liger_rng)
    exact = {k: v.detach().double().cpu() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    exact["target"] = args["target"].cpu()
    for term in (0, 1):
        student = args["student_logits"].detach().clone().requires_grad_()
        LigerFusedCETVDFunction.apply(student, *list(args.values())[1:])[term].sum().backward()
        reference = exact["student_logits"].clone().requires_grad_()
        fused_ce_tvd_oracle(reference, *list(exact.values())[1:])[term].sum().backward()
        tolerance = 1e-5 if liger_dtype in (torch.float32, torch.float64) else 2e-2
        torch.testing.assert_close(student.grad.double().cpu(), reference.grad, rtol=tolerance, atol=tolerance)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    args = case(7, 211, liger_dtype, liger_device, liger_rng)

    def once():
        student = args["student_logits"].clone().requires_grad_()
        ce, tvd = LigerFusedCETVDFunction.apply(student, *list(args.values())[1:])
        (ce.sum() + 0.3 * tvd.sum()).backward()
        return ce, tvd, student.grad

    run_twice_bitwise(once, "fused_ce_tvd")


@pytest.mark.parametrize("case", bad_inputs.cases("fused_ce_tvd"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    if case.name.endswith("out-of-range") and liger_device.type != "cpu":
        pytest.skip("targets are checked on the host only for CPU tensors (no synchronization elsewhere)")
    bad_inputs.expect_refused(case, liger_device, liger_rng)
