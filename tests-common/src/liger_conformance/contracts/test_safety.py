"""Misuse fails loudly and correct use is never corrupted, on every backend.

Two promises of the op contracts (``liger_kernel/ops/_contract.py``):

- An argument a backend may write its gradient over (``overwrites``) is written
  during backward only, and autograd is told (its version counter moves), so a
  conflicting use raises "modified by an inplace operation" instead of reading
  a gradient; a backend that writes nothing gives the exact gradients. No
  backend writes over an incoming gradient (``in_place`` of the norms).
- An index a kernel reads (cross-entropy targets, RoPE position ids) outside
  its range raises IndexError naming the argument where the check is free (CPU
  tensors; every device with LIGER_KERNEL_CHECK_INDICES=1); where it is not
  checked, the backend's own Function never reads out of bounds and gives a
  NaN row instead of a finite, wrong value.

Each case here was a silent wrong answer or a crash on some backend before.
"""

from __future__ import annotations

import os

import pytest
import torch

from liger_conformance import oracles
from liger_conformance.contracts._support import make, raises_naming, targets
from liger_conformance.tolerances import assert_close
from liger_kernel.ops import (
    LigerCrossEntropyFunction,
    LigerFusedLinearCrossEntropyFunction,
    LigerGELUMulFunction,
    LigerRMSNormFunction,
    LigerRopeFunction,
    LigerSiLUMulFunction,
)
from liger_kernel.ops._contract import CHECK_INDICES_ENV

INPLACE_ERROR = "modified by an inplace operation"


def non_leaf(value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(leaf, a non-leaf copy of it that requires grad), as a model's activation."""
    leaf = value.detach().clone().requires_grad_(True)
    return leaf, leaf * 1.0


def backward_or_raise(loss: torch.Tensor) -> bool:
    """Run backward; True if autograd refused it because an input was overwritten."""
    try:
        loss.backward()
    except RuntimeError as exc:
        if INPLACE_ERROR not in str(exc):
            raise
        return True
    return False


GATES = [
    pytest.param((LigerSiLUMulFunction, oracles.swiglu), id="swiglu", marks=pytest.mark.liger_op("swiglu")),
    pytest.param((LigerGELUMulFunction, oracles.geglu), id="geglu", marks=pytest.mark.liger_op("geglu")),
]


@pytest.mark.parametrize("gate", GATES)
def test_gate_input_saved_by_another_op(liger_device, liger_rng, gate):
    """``a`` is also saved by pow(), whose backward runs after the gate's: the
    gate's gradient written over ``a`` must make that backward raise, or the
    backend must leave ``a`` alone and every gradient be exact."""
    function, oracle = gate
    a0 = make((4, 33), torch.float32, liger_device, liger_rng)
    b0 = make((4, 33), torch.float32, liger_device, liger_rng)
    a_leaf, a = non_leaf(a0)
    b_leaf, b = non_leaf(b0)
    side = a.pow(2).sum()  # made first, so autograd runs its backward last
    loss = function.apply(a, b).sum() + side
    if backward_or_raise(loss):
        return
    a64, b64 = a0.double().requires_grad_(True), b0.double().requires_grad_(True)
    (oracle(a64, b64).sum() + a64.pow(2).sum()).backward()
    assert_close(a_leaf.grad, a64.grad, torch.float32, what="da")
    assert_close(b_leaf.grad, b64.grad, torch.float32, what="db")


@pytest.mark.liger_op("cross_entropy")
def test_cross_entropy_logits_saved_by_another_op(liger_device, liger_rng):
    logits0 = make((6, 40), torch.float32, liger_device, liger_rng)
    target = targets(6, 40, liger_device, liger_rng)
    leaf, logits = non_leaf(logits0)
    side = logits.pow(2).mean()
    loss = LigerCrossEntropyFunction.apply(logits, target, None)[0] + side
    if backward_or_raise(loss):
        return
    x64 = logits0.double().requires_grad_(True)
    (oracles.cross_entropy(x64, target)[0] + x64.pow(2).mean()).backward()
    assert_close(leaf.grad, x64.grad, torch.float32, what="dlogits")


@pytest.mark.liger_op("cross_entropy")
def test_cross_entropy_leaves_logits_unchanged_until_backward(liger_device, liger_rng):
    """What a trainer does: the loss, then token accuracy from the same logits,
    then backward. The accuracy must be computed from the logits, not from a
    gradient written over them."""
    logits0 = make((8, 24), torch.float32, liger_device, liger_rng, scale=3.0)
    target = torch.where(
        torch.arange(8, device=liger_device) % 3 == 0,
        logits0.argmax(dim=-1),
        targets(8, 24, liger_device, liger_rng, ignored="none"),
    )
    _, logits = non_leaf(logits0)
    loss = LigerCrossEntropyFunction.apply(logits, target, None)[0]
    assert torch.equal(logits.detach(), logits0)
    expected = (logits0.argmax(dim=-1) == target).float().mean()
    assert (logits.detach().argmax(dim=-1) == target).float().mean() == expected
    loss.backward()


@pytest.mark.liger_op("rms_norm")
def test_rms_norm_leaves_the_incoming_gradient_alone(liger_device, liger_rng):
    """``y.backward(g)`` twice with the same ``g``: ``g`` survives and dX is the
    same both times, with the API's default in_place=True."""
    x_leaf, x = non_leaf(make((5, 48), torch.float32, liger_device, liger_rng))
    w = make((48,), torch.float32, liger_device, liger_rng).requires_grad_(True)
    g = make((5, 48), torch.float32, liger_device, liger_rng)
    g_before = g.clone()
    y = LigerRMSNormFunction.apply(x, w, 1e-6)
    y.backward(g, retain_graph=True)
    first = x_leaf.grad.clone()
    assert torch.equal(g, g_before), "the caller's gradient was written over"
    x_leaf.grad = None
    y.backward(g)
    assert torch.equal(g, g_before), "the caller's gradient was written over"
    assert_close(x_leaf.grad, first, torch.float32, what="dX of the second backward")


@pytest.mark.liger_op("rms_norm")
def test_rms_norm_under_a_residual_add(liger_device, liger_rng):
    """h = r + rms_norm(x): autograd hands the same gradient tensor to both
    inputs of the add, so the residual's gradient must be what reached h."""
    x0 = make((3, 40), torch.float32, liger_device, liger_rng)
    r0 = make((3, 40), torch.float32, liger_device, liger_rng)
    w0 = make((40,), torch.float32, liger_device, liger_rng)
    g = make((3, 40), torch.float32, liger_device, liger_rng)
    x_leaf, x = non_leaf(x0)
    r_leaf, r = non_leaf(r0)
    (r + LigerRMSNormFunction.apply(x, w0, 1e-6)).backward(g)
    assert_close(r_leaf.grad, g, torch.float32, what="d residual")
    x64 = x0.double().requires_grad_(True)
    oracles.rms_norm(x64, w0.double(), 1e-6, dtype=torch.float32).backward(g.double())
    assert_close(x_leaf.grad, x64.grad, torch.float32, what="dX")


# ------------------------------------------------------------------ indices


def skip_unless_indices_checked(device) -> None:
    if device.type != "cpu" and os.environ.get(CHECK_INDICES_ENV) != "1":
        pytest.skip(f"index values are checked on accelerators only with {CHECK_INDICES_ENV}=1")


def rope_inputs(device, rng, ids):
    q = make((2, 3, 4, 8), torch.float32, device, rng)
    k = make((2, 1, 4, 8), torch.float32, device, rng)
    cos = make((6, 8), torch.float32, device, rng)
    sin = make((6, 8), torch.float32, device, rng)
    position_ids = torch.tensor(ids, dtype=torch.int64, device=device)
    return q, k, cos, sin, position_ids


BAD_POSITIONS = [
    pytest.param([[0, 1, 2, 6], [0, 1, 2, 3]], id="past-the-table"),
    pytest.param([[0, 1, 2, 3], [-1, 1, 2, 3]], id="negative"),
]


@pytest.mark.liger_op("rope")
@pytest.mark.parametrize("ids", BAD_POSITIONS)
def test_rope_position_ids_out_of_range_raise(liger_device, liger_rng, ids):
    q, k, cos, sin, position_ids = rope_inputs(liger_device, liger_rng, ids)
    skip_unless_indices_checked(liger_device)
    with raises_naming(IndexError, "position_ids"):
        LigerRopeFunction.apply(q, k, cos, sin, position_ids)


@pytest.mark.liger_op("rope")
@pytest.mark.parametrize("ids", BAD_POSITIONS)
def test_rope_backend_never_reads_past_the_table(liger_device, liger_rng, ids):
    """The backend's own Function, past the contract's check: the bad position
    comes out NaN, every other position exact."""
    q, k, cos, sin, position_ids = rope_inputs(liger_device, liger_rng, ids)
    q_out, k_out = LigerRopeFunction.route(liger_device.type).apply(q, k, cos, sin, position_ids, 1)
    bad = (position_ids < 0) | (position_ids >= cos.shape[0])
    good_ids = torch.where(bad, 0, position_ids)
    q_ref, k_ref = oracles.rope(q.double(), k.double(), cos.double(), sin.double(), good_ids)
    for out, ref in ((q_out, q_ref), (k_out, k_ref)):
        at_bad = out.permute(0, 2, 1, 3)[bad]
        assert at_bad.isnan().all(), "a position past the table gave numbers"
        keep = ~bad[:, None, :, None].expand_as(out)
        assert_close(out[keep], ref.to(out.dtype)[keep], torch.float32, what="rotated values")


BAD_TARGETS = [pytest.param(11, id="past-the-vocabulary"), pytest.param(-3, id="negative")]


@pytest.mark.liger_op("cross_entropy")
@pytest.mark.parametrize("bad", BAD_TARGETS)
def test_cross_entropy_target_out_of_range_raises(liger_device, liger_rng, bad):
    skip_unless_indices_checked(liger_device)
    logits = make((4, 11), torch.float32, liger_device, liger_rng)
    target = torch.tensor([1, bad, -100, 2], device=liger_device)
    with raises_naming(IndexError, "target"):
        LigerCrossEntropyFunction.apply(logits, target, None)


@pytest.mark.liger_op("fused_linear_cross_entropy")
@pytest.mark.parametrize("bad", BAD_TARGETS)
def test_fused_linear_cross_entropy_target_out_of_range_raises(liger_device, liger_rng, bad):
    skip_unless_indices_checked(liger_device)
    x = make((4, 8), torch.float32, liger_device, liger_rng)
    weight = make((11, 8), torch.float32, liger_device, liger_rng)
    target = torch.tensor([1, bad, -100, 2], device=liger_device)
    with raises_naming(IndexError, "target"):
        LigerFusedLinearCrossEntropyFunction.apply(x, weight, target)


@pytest.mark.liger_op("cross_entropy")
@pytest.mark.parametrize("bad", BAD_TARGETS)
def test_cross_entropy_backend_poisons_a_bad_target(liger_device, liger_rng, bad):
    """The backend's own Function, past the contract's check: the bad row's loss
    and gradient are NaN (a finite loss here was a silent wrong answer)."""
    logits0 = make((4, 11), torch.float32, liger_device, liger_rng)
    target = torch.tensor([1, bad, -100, 2], device=liger_device)
    leaf, logits = non_leaf(logits0)
    function = LigerCrossEntropyFunction.route(liger_device.type)
    rows = function.apply(logits, target, None, -100, 0.0, 0.0, "none", None, False, False, False)[0]
    assert rows[1].isnan(), f"loss of the bad row is {rows[1].item()}"
    expected = oracles.cross_entropy(logits0.double(), torch.where(target == bad, -100, target), reduction="none")[0]
    assert_close(rows[[0, 2, 3]], expected[[0, 2, 3]].float(), torch.float32, what="loss of the good rows")
    rows.nansum().backward()
    assert leaf.grad[1].isnan().all()
    assert leaf.grad[[0, 2, 3]].isfinite().all()


@pytest.mark.liger_op("fused_linear_cross_entropy")
@pytest.mark.parametrize("bad", BAD_TARGETS)
def test_fused_linear_cross_entropy_backend_poisons_a_bad_target(liger_device, liger_rng, bad):
    x = make((4, 8), torch.float32, liger_device, liger_rng)
    weight = make((11, 8), torch.float32, liger_device, liger_rng)
    target = torch.tensor([1, bad, -100, 2], device=liger_device)
    function = LigerFusedLinearCrossEntropyFunction.route(liger_device.type)
    loss = function.apply(x, weight, target, None, None, -100, 0.0, 0.0, "none", None, False, None, False, False, False)
    rows = loss[0]
    assert rows[1].isnan(), f"loss of the bad row is {rows[1].item()}"
    assert rows[[0, 2, 3]].isfinite().all()
