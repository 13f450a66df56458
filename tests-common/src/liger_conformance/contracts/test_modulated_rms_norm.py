"""LigerModulatedRMSNormFunction against the float64 oracle (see liger_kernel.ops.modulated_rms_norm)."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise, shape_id
from liger_conformance.tolerances import assert_close
from liger_kernel.ops import LigerModulatedRMSNormFunction, LigerRMSNormFunction

pytestmark = pytest.mark.liger_op("modulated_rms_norm")

EPS = 1e-6
SHAPES = by_size(
    small=[(1, 7), (3, 64), (2, 3, 300), (2, 24, 13), (2, 3, 4100)],
    full=[(1, 7), (5, 4097), (2, 16, 8192), (4, 1024, 3072), (2, 3, 65537)],
)
MODES = [("llama", 0.0), ("llama", 1.0), ("gemma", 0.0), ("gemma", 1.0), ("none", 0.0)]


def modulation_shape(shape: tuple[int, ...], kind: str) -> tuple[int, ...]:
    """scale's shape for X of ``shape``: one row for all tokens, one per
    sample (X's first dimension), or one per token."""
    if kind == "shared":
        return shape[-1:]
    if kind == "per_sample":
        return (shape[0], shape[-1])
    return shape


def run(X, W, scale, shift, eps=EPS, offset=0.0, casting_mode="llama", in_place=True, *, dtype, rng):
    grads = tuple(name for name, t in (("X", X), ("W", W), ("scale", scale), ("shift", shift)) if t is not None)
    return compare_with_oracle(
        LigerModulatedRMSNormFunction.apply,
        lambda a: oracles.modulated_rms_norm(
            a["X"], a["W"], a["scale"], a["shift"], a["eps"], a["offset"], a["casting_mode"], dtype
        ),
        {
            "X": X,
            "W": W,
            "scale": scale,
            "shift": shift,
            "eps": eps,
            "offset": offset,
            "casting_mode": casting_mode,
            "in_place": in_place,
        },
        dtype=dtype,
        rng=rng,
        grads=grads,
        outputs=("Y",),
        reduced=("W", "scale", "shift"),
    )


def inputs(shape, kind, dtype, device, rng, offset=0.0):
    X = make(shape, dtype, device, rng)
    W = make(shape[-1:], dtype, device, rng, scale=0.5, shift=0.5 - offset)
    scale = make(modulation_shape(shape, kind), dtype, device, rng, scale=0.3)
    shift = make(modulation_shape(shape, kind), dtype, device, rng, scale=0.3)
    return X, W, scale, shift


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("kind", ["shared", "per_sample", "per_token"])
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, kind):
    run(*inputs(shape, kind, liger_dtype, liger_device, liger_rng), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize(("casting_mode", "offset"), MODES, ids=[f"{m}-offset{o:g}" for m, o in MODES])
def test_casting_modes(liger_device, liger_dtype, liger_rng, casting_mode, offset):
    X, W, scale, shift = inputs((2, 5, 48), "per_sample", liger_dtype, liger_device, liger_rng, offset)
    run(X, W, scale, shift, EPS, offset, casting_mode, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("casting_mode", ["llama", "gemma"])
def test_without_weight_or_shift(liger_device, liger_dtype, liger_rng, casting_mode):
    X, _, scale, _ = inputs((2, 6, 40), "per_sample", liger_dtype, liger_device, liger_rng)
    run(X, None, scale, None, casting_mode=casting_mode, dtype=liger_dtype, rng=liger_rng)


def test_broadcast_shapes(liger_device, liger_dtype, liger_rng):
    """(1, H) is the shared row, (B, 1, H) one per sample, as torch broadcasting reads them."""
    X = make((3, 4, 24), liger_dtype, liger_device, liger_rng)
    W = make((24,), liger_dtype, liger_device, liger_rng, shift=1.0)
    for shape in ((1, 24), (3, 1, 24), (1, 1, 24)):
        scale = make(shape, liger_dtype, liger_device, liger_rng, scale=0.3)
        shift = make(shape, liger_dtype, liger_device, liger_rng, scale=0.3)
        run(X, W, scale, shift, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_input(liger_device, liger_dtype, liger_rng, layout):
    X = make((3, 2, 45), liger_dtype, liger_device, liger_rng, layout=layout)
    W = make((45,), liger_dtype, liger_device, liger_rng, shift=1.0)
    scale = make((3, 45), liger_dtype, liger_device, liger_rng, scale=0.3, layout=layout)
    shift = make((3, 45), liger_dtype, liger_device, liger_rng, scale=0.3, layout=layout)
    run(X, W, scale, shift, dtype=liger_dtype, rng=liger_rng)


def test_zero_modulation_is_rms_norm(liger_device, liger_dtype, liger_rng):
    """scale = 0 and no shift: the output and dx are LigerRMSNormFunction's."""
    X = make((4, 3, 50), liger_dtype, liger_device, liger_rng)
    W = make((50,), liger_dtype, liger_device, liger_rng, shift=1.0)
    dY = make((4, 3, 50), liger_dtype, liger_device, liger_rng)
    x1, x2 = X.clone().requires_grad_(), X.clone().requires_grad_()
    y1 = LigerModulatedRMSNormFunction.apply(
        x1, W, torch.zeros(4, 50, dtype=liger_dtype, device=liger_device), None, EPS
    )
    y2 = LigerRMSNormFunction.apply(x2, W, EPS)
    y1.backward(dY)
    y2.backward(dY)
    assert_close(y1, y2.detach(), liger_dtype, "output")
    assert_close(x1.grad, x2.grad, liger_dtype, "gradient of X")


def test_empty_batch(liger_device, liger_rng):
    """No rows: an empty y, and zero gradients for W and a shared scale and shift."""
    X = torch.empty((0, 16), device=liger_device).requires_grad_()
    W = torch.ones(16, device=liger_device).requires_grad_()
    scale = torch.zeros(16, device=liger_device).requires_grad_()
    shift = torch.zeros(16, device=liger_device).requires_grad_()
    y = LigerModulatedRMSNormFunction.apply(X, W, scale, shift, EPS)
    y.sum().backward()
    assert tuple(y.shape) == (0, 16) and tuple(X.grad.shape) == (0, 16)
    for name, t in (("W", W), ("scale", scale), ("shift", shift)):
        assert torch.equal(t.grad, torch.zeros_like(t)), f"gradient of {name} over no rows is not zero"


@pytest.mark.parametrize("kind", ["shared", "per_sample"])
def test_deterministic(liger_device, liger_dtype, liger_rng, kind):
    X, W, scale, shift = inputs((4, 9, 70), kind, liger_dtype, liger_device, liger_rng)
    dY = make((4, 9, 70), liger_dtype, liger_device, liger_rng)

    def once():
        leaves = [t.clone().requires_grad_() for t in (X, W, scale, shift)]
        y = LigerModulatedRMSNormFunction.apply(*leaves, EPS)
        y.backward(dY.clone())
        return (y, *(t.grad for t in leaves))

    run_twice_bitwise(once, "modulated_rms_norm")


@pytest.mark.parametrize("case", bad_inputs.cases("modulated_rms_norm"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
