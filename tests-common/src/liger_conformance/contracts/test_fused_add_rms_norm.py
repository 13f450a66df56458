"""LigerFusedAddRMSNormFunction against the float64 oracle (see liger_kernel.ops.fused_add_rms_norm)."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import (
    compare_with_oracle,
    make,
    oracle_device,
    run_twice_bitwise,
    shape_id,
)
from liger_conformance.tolerances import assert_close
from liger_kernel.ops import LigerFusedAddRMSNormFunction

pytestmark = pytest.mark.liger_op("fused_add_rms_norm")

EPS = 1e-6
SHAPES = by_size(
    small=[(1, 7), (3, 64), (2, 3, 300), (2, 48, 13)],
    full=[(1, 7), (5, 4097), (2, 16, 8192), (2, 65537)],
)
MODES = [("llama", 0.0), ("gemma", 1.0), ("none", 0.0)]


def run(X, R, W, eps=EPS, offset=0.0, casting_mode="llama", in_place=False, *, dtype, rng):
    return compare_with_oracle(
        LigerFusedAddRMSNormFunction.apply,
        lambda a: oracles.fused_add_rms_norm(a["X"], a["R"], a["W"], a["eps"], a["offset"], a["casting_mode"], dtype),
        {"X": X, "R": R, "W": W, "eps": eps, "offset": offset, "casting_mode": casting_mode, "in_place": in_place},
        dtype=dtype,
        rng=rng,
        grads=("X", "R", "W"),
        outputs=("Y", "S"),
        reduced=("W",),
    )


def inputs(shape, dtype, device, rng, offset=0.0, layout="contiguous"):
    X = make(shape, dtype, device, rng, layout=layout)
    R = make(shape, dtype, device, rng, layout=layout)
    W = make(shape[-1:], dtype, device, rng, scale=0.5, shift=0.5 - offset)
    return X, R, W


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize(("casting_mode", "offset"), MODES, ids=[f"{m}-offset{o:g}" for m, o in MODES])
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, casting_mode, offset):
    X, R, W = inputs(shape, liger_dtype, liger_device, liger_rng, offset)
    run(X, R, W, EPS, offset, casting_mode, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, layout):
    X, R, W = inputs((2, 3, 45), liger_dtype, liger_device, liger_rng, layout=layout)
    run(X, R, W, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("in_place", [True, False], ids=["in_place", "out_of_place"])
def test_in_place_keeps_caller_tensors(liger_device, liger_dtype, liger_rng, in_place):
    """X and R stay as the caller passed them (the oracle comparison checks
    them bit for bit). in_place=False: two calls fed the same gradient tensor
    by autograd both get it intact. in_place=True lets a backend write dS over
    the gradient autograd hands it (the API contract), so there a single call
    whose Y and S get one shared gradient must get the right dX, dR and dW."""
    X, R, W = inputs((4, 20), liger_dtype, liger_device, liger_rng)
    run(X, R, W, in_place=in_place, dtype=liger_dtype, rng=liger_rng)

    X2, R2, _ = inputs((4, 20), liger_dtype, liger_device, liger_rng)
    leaves = [t.detach().clone().requires_grad_() for t in (X, R, X2, R2, W)]
    dY = make((4, 20), liger_dtype, liger_device, liger_rng)
    saved = dY.clone()
    ref = [t.detach().to(oracle_device(t.device), torch.float64).requires_grad_() for t in leaves]
    ref_dY = dY.to(oracle_device(dY.device), torch.float64)
    Y1, S1 = LigerFusedAddRMSNormFunction.apply(leaves[0], leaves[1], leaves[4], EPS, 0.0, "llama", in_place)
    ry1, rs1 = oracles.fused_add_rms_norm(ref[0], ref[1], ref[4], EPS, dtype=liger_dtype)
    if in_place:
        ((Y1 + S1) * dY).sum().backward()
        ((ry1 + rs1) * ref_dY).sum().backward()
        checked = 2
    else:
        Y2, S2 = LigerFusedAddRMSNormFunction.apply(leaves[2], leaves[3], leaves[4], EPS, 0.0, "llama", False)
        ((Y1 + Y2 + S1 + S2) * dY).sum().backward()
        ry2, rs2 = oracles.fused_add_rms_norm(ref[2], ref[3], ref[4], EPS, dtype=liger_dtype)
        ((ry1 + ry2 + rs1 + rs2) * ref_dY).sum().backward()
        checked = 4
    names = ("X", "R", "second X", "second R")
    for name, got, want in zip(names[:checked], leaves[:checked], ref[:checked]):
        assert_close(got.grad, want.grad, liger_dtype, f"gradient of {name}")
    assert_close(leaves[4].grad, ref[4].grad, liger_dtype, "gradient of W", "reduced")
    assert torch.equal(dY, saved), "the caller's dY was modified"


def test_fp16_rms_in_fp32(liger_device, liger_rng):
    X, R, W = inputs((3, 50), torch.float16, liger_device, liger_rng)
    X, R = X * 300, R * 300
    run(X, R, W, dtype=torch.float16, rng=liger_rng)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    X, R, W = inputs((5, 70), liger_dtype, liger_device, liger_rng)
    dY = make((5, 70), liger_dtype, liger_device, liger_rng)

    def once():
        x, r, w = (t.clone().requires_grad_() for t in (X, R, W))
        y, s = LigerFusedAddRMSNormFunction.apply(x, r, w, EPS)
        (y * dY + s * dY).sum().backward()
        return y, s, x.grad, r.grad, w.grad

    run_twice_bitwise(once, "fused_add_rms_norm")


@pytest.mark.parametrize("case", bad_inputs.cases("fused_add_rms_norm"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
