"""LigerFusedLinearKLDivFunction against a float64 oracle (see liger_kernel.ops.fused_linear_kl_div).

The oracle forms the student's logits whole, in float64, and applies the
contract's formula; the op must agree without ever holding them whole
(test_memory_bounded_by_a_chunk)."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise, shape_id, targets
from liger_conformance.contracts.test_fused_linear_jsd import LargestTensor
from liger_conformance.contracts.test_jsd import loss_scale
from liger_kernel.ops import LigerFusedLinearKLDivFunction

pytestmark = pytest.mark.liger_op("fused_linear_kl_div")

#: (tokens, hidden, vocab)
SHAPES = by_size(
    small=[(1, 8, 33), (6, 16, 130)],
    full=[(1, 8, 33), (6, 16, 130), (1024, 1024, 32000), (256, 512, 128 * 1024 + 7)],
)
REDUCTIONS = ["batchmean", "mean", "sum"]


def fused_linear_kl_div_oracle(
    x, w, target, shift_labels=None, reduction="batchmean", ignore_index=-100, temperature=1.0, eps=1e-10
):
    log_s = torch.log_softmax(x @ w.T / temperature, dim=-1)
    rows = (target * (target.clamp(min=eps).log() - log_s)).sum(dim=-1)
    kept = torch.ones_like(rows, dtype=torch.bool) if shift_labels is None else shift_labels != ignore_index
    count = max(int(kept.sum()), 1)
    divisor = {"batchmean": count, "mean": count * w.shape[0], "sum": 1}[reduction]
    return torch.where(kept, rows, 0.0).sum() / divisor


def case(tokens, hidden, vocab, dtype, device, rng, *, ignored=None, layout="contiguous", target_dtype=None):
    """The arguments of LigerFusedLinearKLDivFunction.apply, by name."""
    student_input = make((tokens, hidden), dtype, device, rng, layout=layout)
    student_weight = make((vocab, hidden), dtype, device, rng, scale=hidden**-0.5)
    # a sharper teacher than the student, as in distillation
    teacher = make((tokens, vocab), torch.float64, device, rng, scale=2.0)
    target = torch.softmax(teacher, dim=-1).to(target_dtype or dtype)
    labels = targets(tokens, vocab, device, rng, ignored=ignored) if ignored is not None else None
    return {
        "student_input": student_input,
        "student_weight": student_weight,
        "target": target,
        "shift_labels": labels,
        "reduction": "batchmean",
        "ignore_index": -100,
        "temperature": 1.0,
        "eps": 1e-10,
    }


def run(args, *, dtype, rng, non_leaf=False, accum_dtype=None):
    scale = loss_scale(dtype, args["student_input"].shape[0], args["student_weight"].shape[0])
    return compare_with_oracle(
        lambda *a: LigerFusedLinearKLDivFunction.apply(*a, accum_dtype=accum_dtype) * scale,
        lambda a: fused_linear_kl_div_oracle(*a.values()) * scale,
        args,
        dtype=dtype,
        rng=rng,
        grads=("student_input", "student_weight"),
        outputs=("loss",),
        reduced=("loss", "student_weight"),
        output_dtypes={"loss": (torch.float32, torch.float64)},
        non_leaf=("student_input",) if non_leaf else (),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, reduction):
    args = case(*shape, liger_dtype, liger_device, liger_rng)
    args["reduction"] = reduction
    run(args, dtype=liger_dtype, rng=liger_rng)


def test_wide_vocabulary(liger_device, liger_dtype, liger_rng):
    """A vocabulary of several kernel blocks on every profile (the small shapes fit in one)."""
    args = case(2, 8, 5000, liger_dtype, liger_device, liger_rng)
    args["shift_labels"] = torch.tensor([3, -100], device=liger_device)
    args["temperature"] = 1.5
    run(args, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize(("reduction", "temperature"), [("batchmean", 2.0), ("sum", 0.5), ("mean", 1.5)])
def test_temperature(liger_device, liger_dtype, liger_rng, reduction, temperature):
    args = case(6, 16, 97, liger_dtype, liger_device, liger_rng, ignored="some")
    args.update(reduction=reduction, temperature=temperature)
    run(args, dtype=liger_dtype, rng=liger_rng)


LABEL_CASES = [("some", "batchmean"), ("some", "mean"), ("all", "batchmean"), ("all", "sum"), ("none", "mean")]


@pytest.mark.parametrize(("ignored", "reduction"), LABEL_CASES, ids=[f"{i}-{r}" for i, r in LABEL_CASES])
def test_shift_labels(liger_device, liger_dtype, liger_rng, ignored, reduction):
    """Ignored rows add nothing and divide nothing; with none kept the loss is 0."""
    args = case(7, 16, 97, liger_dtype, liger_device, liger_rng, ignored=ignored)
    args["reduction"] = reduction
    run(args, dtype=liger_dtype, rng=liger_rng)


def test_custom_ignore_index(liger_device, liger_dtype, liger_rng):
    args = case(6, 16, 40, liger_dtype, liger_device, liger_rng)
    args["shift_labels"] = targets(6, 40, liger_device, liger_rng, ignore_index=5, dtype=torch.int32)
    args.update(ignore_index=5, temperature=1.5)
    run(args, dtype=liger_dtype, rng=liger_rng)


def test_sparse_target(liger_device, liger_dtype, liger_rng):
    """Targets with exact zeros (top-k soft labels, one-hot rows): 0 * log 0 counts 0, by eps."""
    args = case(6, 16, 50, liger_dtype, liger_device, liger_rng, ignored="some")
    target = args["target"].double()
    keep = target >= target.topk(4, dim=-1).values[:, -1:]
    target = torch.where(keep, target, 0.0)
    target[0] = 0.0
    target[0, 7] = 1.0
    args["target"] = (target / target.sum(dim=-1, keepdim=True)).to(liger_dtype)
    run(args, dtype=liger_dtype, rng=liger_rng)


def test_target_of_another_dtype(liger_device, liger_dtype, liger_rng):
    """Soft labels cached in another precision than the student's."""
    other = torch.float32 if liger_dtype != torch.float32 else torch.bfloat16
    args = case(6, 16, 97, liger_dtype, liger_device, liger_rng, ignored="some", target_dtype=other)
    run(args, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded_input", "transposed_weight", "transposed_target"])
def test_non_contiguous(liger_device, liger_dtype, liger_rng, layout):
    args = case(
        5, 24, 130, liger_dtype, liger_device, liger_rng, layout="padded" if layout == "padded_input" else "contiguous"
    )
    if layout == "transposed_weight":
        # a (hidden, vocab) matrix seen transposed, as tied embeddings can be
        args["student_weight"] = args["student_weight"].T.contiguous().T
    if layout == "transposed_target":
        args["target"] = args["target"].T.contiguous().T
    run(args, dtype=liger_dtype, rng=liger_rng)


def test_non_leaf_student_input(liger_device, liger_dtype, liger_rng):
    args = case(6, 16, 97, liger_dtype, liger_device, liger_rng, ignored="some")
    run(args, dtype=liger_dtype, rng=liger_rng, non_leaf=True)


@pytest.mark.parametrize("accum_dtype", [None, torch.float32])
def test_accum_dtype(liger_device, liger_dtype, liger_rng, accum_dtype):
    """0.8.5's accum_dtype (how dstudent_weight accumulates): same loss and gradients."""
    args = case(6, 16, 97, liger_dtype, liger_device, liger_rng, ignored="some")
    run(args, dtype=liger_dtype, rng=liger_rng, accum_dtype=accum_dtype)


def test_without_grad(liger_device, liger_dtype, liger_rng):
    """Under torch.no_grad() (evaluation) the loss is the same and nothing is written."""
    args = case(6, 16, 97, liger_dtype, liger_device, liger_rng, ignored="some")
    expected = fused_linear_kl_div_oracle(
        *(v.double().cpu() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for v in args.values())
    )
    with torch.no_grad():
        loss = LigerFusedLinearKLDivFunction.apply(*args.values())
    tolerance = 1e-5 if liger_dtype in (torch.float32, torch.float64) else 2e-2
    torch.testing.assert_close(loss.double().cpu(), expected, rtol=tolerance, atol=tolerance)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    args = case(7, 16, 211, liger_dtype, liger_device, liger_rng, ignored="some")

    def once():
        x, w = (args[name].clone().requires_grad_() for name in ("student_input", "student_weight"))
        loss = LigerFusedLinearKLDivFunction.apply(x, w, *list(args.values())[2:])
        loss.backward(torch.tensor(1.3, dtype=loss.dtype, device=loss.device))
        return loss, x.grad, w.grad

    run_twice_bitwise(once, "fused_linear_kl_div")


def test_memory_bounded_by_a_chunk(liger_device, liger_rng):
    """No tensor of the whole batch's fp32 logits (tokens x vocab) exists in forward or
    backward. The target, an input of that many elements, is bfloat16 so that it
    is smaller than those logits; with hidden << vocab a chunk of logits is the
    largest tensor the op makes, and it must hold fewer rows than the batch."""
    tokens, hidden, vocab = 128, 2, 256
    args = case(tokens, hidden, vocab, torch.float32, liger_device, liger_rng, ignored="some")
    args["target"] = args["target"].to(torch.bfloat16)
    args["student_input"].requires_grad_()
    args["student_weight"].requires_grad_()
    watch = LargestTensor()
    with watch:
        loss = LigerFusedLinearKLDivFunction.apply(*args.values())
        loss.backward()
    whole = tokens * vocab * torch.float32.itemsize
    assert watch.largest < whole, (
        f"a tensor of {watch.largest} bytes appeared: as large as the {tokens} x {vocab} fp32 logits of the batch"
    )
    assert args["student_input"].grad is not None and args["student_weight"].grad is not None


@pytest.mark.parametrize("case", bad_inputs.cases("fused_linear_kl_div"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
