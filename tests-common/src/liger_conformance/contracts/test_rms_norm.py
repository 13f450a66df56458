"""LigerRMSNormFunction against the float64 oracle (see liger_kernel.ops.rms_norm)."""

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
from liger_kernel.ops import LigerRMSNormFunction

pytestmark = pytest.mark.liger_op("rms_norm")

EPS = 1e-6
SHAPES = by_size(
    small=[(1, 7), (3, 64), (2, 3, 300), (2, 48, 13)],
    full=[(1, 7), (5, 4097), (2, 16, 8192), (2, 65537)],
)
#: (casting_mode, offset): each mode plain, and Gemma's offset 1.0 with its own mode and llama's
MODES = [("llama", 0.0), ("llama", 1.0), ("gemma", 0.0), ("gemma", 1.0), ("none", 0.0)]


def run(X, W, eps=EPS, offset=0.0, casting_mode="llama", in_place=True, row_mode=None, *, dtype, rng):
    return compare_with_oracle(
        LigerRMSNormFunction.apply,
        lambda a: oracles.rms_norm(a["X"], a["W"], a["eps"], a["offset"], a["casting_mode"], dtype),
        {
            "X": X,
            "W": W,
            "eps": eps,
            "offset": offset,
            "casting_mode": casting_mode,
            "in_place": in_place,
            "row_mode": row_mode,
        },
        dtype=dtype,
        rng=rng,
        grads=("X", "W") if W is not None else ("X",),
        outputs=("Y",),
        reduced=("W",),
    )


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize(("casting_mode", "offset"), MODES, ids=[f"{m}-offset{o:g}" for m, o in MODES])
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, casting_mode, offset):
    X = make(shape, liger_dtype, liger_device, liger_rng)
    W = make(shape[-1:], liger_dtype, liger_device, liger_rng, scale=0.5, shift=0.5 - offset)
    run(X, W, EPS, offset, casting_mode, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, layout):
    X = make((3, 2, 45), liger_dtype, liger_device, liger_rng, layout=layout)
    W = make((45,), liger_dtype, liger_device, liger_rng, shift=1.0)
    run(X, W, dtype=liger_dtype, rng=liger_rng)


def test_large_eps(liger_device, liger_dtype, liger_rng):
    X = make((4, 33), liger_dtype, liger_device, liger_rng, scale=0.3)
    W = make((33,), liger_dtype, liger_device, liger_rng, shift=1.0)
    run(X, W, 0.5, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("casting_mode", ["llama", "gemma"])  # "gemma": Gemma-4's and MuseGlimmer's scale-free norms
def test_without_weight(liger_device, liger_dtype, liger_rng, casting_mode):
    X = make((3, 40), liger_dtype, liger_device, liger_rng)
    run(X, None, casting_mode=casting_mode, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("row_mode", [True, False])
def test_row_mode_is_only_a_hint(liger_device, liger_dtype, liger_rng, row_mode):
    X = make((5, 24), liger_dtype, liger_device, liger_rng)
    W = make((24,), liger_dtype, liger_device, liger_rng, shift=1.0)
    run(X, W, row_mode=row_mode, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("in_place", [True, False], ids=["in_place", "out_of_place"])
def test_shared_gradient_survives(liger_device, liger_dtype, liger_rng, in_place):
    """Two norms whose outputs are added receive the same gradient tensor from
    autograd, and neither may spoil it for the other, whatever ``in_place``
    says (no backend writes over an incoming gradient: see the op contract).
    The caller's X, W and dY stay as they were."""
    shape = (4, 20)
    X1 = make(shape, liger_dtype, liger_device, liger_rng).requires_grad_()
    X2 = make(shape, liger_dtype, liger_device, liger_rng).requires_grad_()
    W = make(shape[-1:], liger_dtype, liger_device, liger_rng, shift=1.0).requires_grad_()
    dY = make(shape, liger_dtype, liger_device, liger_rng)
    saved = [t.detach().clone() for t in (X1, X2, W, dY)]
    ref = [t.detach().to(oracle_device(t.device), torch.float64).requires_grad_() for t in (X1, X2, W)]
    ref_dY = dY.to(oracle_device(dY.device), torch.float64)

    Y1 = LigerRMSNormFunction.apply(X1, W, EPS, 0.0, "llama", in_place)
    Y2 = LigerRMSNormFunction.apply(X2, W, EPS, 0.0, "llama", in_place)
    (Y1 + Y2).backward(dY)
    ref_y1 = oracles.rms_norm(ref[0], ref[2], EPS, dtype=liger_dtype)
    ref_y2 = oracles.rms_norm(ref[1], ref[2], EPS, dtype=liger_dtype)
    (ref_y1 + ref_y2).backward(ref_dY)
    assert_close(X1.grad, ref[0].grad, liger_dtype, "gradient of the first X")
    assert_close(X2.grad, ref[1].grad, liger_dtype, "gradient of the second X")
    assert_close(W.grad, ref[2].grad, liger_dtype, "gradient of W", "reduced")
    for name, tensor, before in zip(("X1", "X2", "W", "dY"), (X1, X2, W, dY), saved):
        assert torch.equal(tensor.detach(), before), f"the caller's {name} was modified"


@pytest.mark.parametrize("casting_mode", ["llama", "gemma"])
def test_fp16_rms_in_fp32(liger_device, liger_rng, casting_mode):
    """llama and gemma compute the rms in fp32: squares beyond fp16's range are fine."""
    X = make((3, 50), torch.float16, liger_device, liger_rng, scale=400.0)
    W = make((50,), torch.float16, liger_device, liger_rng, shift=1.0)
    run(X, W, casting_mode=casting_mode, dtype=torch.float16, rng=liger_rng)


@pytest.mark.parametrize("weight_dtype", [torch.bfloat16, torch.float16], ids=str)
def test_llama_rounds_offset_plus_weight(liger_device, liger_rng, weight_dtype):
    """ "llama" multiplies by offset + W rounded to W's dtype. Here W is half
    precision, below half its dtype's spacing at 1, so 1 + W rounds to exactly 1
    (to nearest or toward zero alike) and Y is x * rstd; X is float32, so Y's own
    rounding is far smaller than the up to 0.45 spacings an unrounded 1 + W adds."""
    X = make((8, 256), torch.float32, liger_device, liger_rng)
    spacing = torch.finfo(weight_dtype).eps
    below_half = torch.rand(256, generator=liger_rng, dtype=torch.float64) * 0.35 + 0.1
    W = (below_half * spacing).to(weight_dtype).to(liger_device)
    assert torch.all((1.0 + W.double()).to(weight_dtype) == 1.0)
    Y = LigerRMSNormFunction.apply(X, W, EPS, 1.0, "llama", False)
    x = X.double().cpu()
    expected = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + EPS)
    torch.testing.assert_close(Y.detach().cpu().double(), expected, rtol=2e-6, atol=1e-6)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    X = make((5, 70), liger_dtype, liger_device, liger_rng)
    W = make((70,), liger_dtype, liger_device, liger_rng, shift=1.0)
    dY = make((5, 70), liger_dtype, liger_device, liger_rng)

    def once():
        x, w = X.clone().requires_grad_(), W.clone().requires_grad_()
        y = LigerRMSNormFunction.apply(x, w, EPS, 0.0, "llama", False)
        y.backward(dY.clone())
        return y, x.grad, w.grad

    run_twice_bitwise(once, "rms_norm")


@pytest.mark.parametrize("case", bad_inputs.cases("rms_norm"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
