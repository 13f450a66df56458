"""Every op as a PyTorch operator (liger_kernel.ops._library) on this backend.

``torch.library.opcheck`` runs the forward operator (and through its autograd
formula the backward one) for schema truthfulness (nothing written that is
not declared, no output aliasing an argument), autograd registration, fake
tensors matching real outputs (shapes, dtypes, strides), and AOTAutograd
tracing with dynamic shapes giving the eager results. The operator route
must also give exactly what the eager route gives, leave nothing behind once
its graph is gone, and never write its arguments.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest
import torch

from liger_kernel.cli.samples import SAMPLES, sample
from liger_kernel.ops import OPS, _library

#: one case per op, marked with it (skipped where the backend lacks the op)
EVERY_OP = [pytest.param(op, marks=pytest.mark.liger_op(op), id=op) for op in sorted(OPS)]


def test_every_op_has_a_sample():
    assert sorted(SAMPLES) == sorted(OPS)


def _fresh(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.detach().clone().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a for a in args)


def _backward(outputs: Any) -> None:
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    total = sum((o.float() * (i + 1.5)).sum() for i, o in enumerate(outputs) if o is not None and o.requires_grad)
    total.backward()


@pytest.mark.parametrize("op", EVERY_OP)
def test_opcheck(liger_device, liger_rng, op):
    cls = OPS[op]
    operators, values = _library.arguments(cls, sample(op, liger_device, liger_rng))
    torch.library.opcheck(operators.forward, values)


@pytest.mark.parametrize("op", EVERY_OP)
def test_operator_route_matches_eager(liger_device, liger_rng, op):
    cls = OPS[op]
    args = sample(op, liger_device, liger_rng)
    eager_args, operator_args = _fresh(args), _fresh(args)
    gc.collect()
    states_before = set(_library._STATE)
    eager = cls.apply(*eager_args)
    _backward(eager)
    _library.use_operators(True)
    try:
        routed = cls.apply(*operator_args)
        _backward(routed)
    finally:
        _library.use_operators(False)
    eager = eager if isinstance(eager, tuple) else (eager,)
    routed = routed if isinstance(routed, tuple) else (routed,)
    assert [o is None for o in routed] == [o is None for o in eager]
    for got, want in zip(routed, eager, strict=True):
        if want is not None:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for got, want in zip(operator_args, eager_args, strict=True):
        if isinstance(want, torch.Tensor) and want.requires_grad:
            torch.testing.assert_close(got.grad, want.grad, rtol=1e-5, atol=1e-6)
    del eager, routed
    gc.collect()
    assert set(_library._STATE) <= states_before, "operator state outlived its graph"


@pytest.mark.parametrize("op", [p for p in EVERY_OP if p.id in ("cross_entropy", "swiglu", "rms_norm")])
def test_operator_route_writes_no_argument(liger_device, liger_rng, op):
    """Inputs the eager route may overwrite (activations, dY) stay intact."""
    cls = OPS[op]
    leaves = sample(op, liger_device, liger_rng)
    args = tuple(a * 1 if isinstance(a, torch.Tensor) and a.requires_grad else a for a in leaves)
    before = [a.detach().clone() if isinstance(a, torch.Tensor) else None for a in args]
    _library.use_operators(True)
    try:
        outputs = cls.apply(*args)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        upstream = [
            torch.ones_like(o) if o.is_floating_point() and o.requires_grad else None for o in outputs if o is not None
        ]
        kept = [(o, g) for o, g in zip([o for o in outputs if o is not None], upstream) if g is not None]
        torch.autograd.backward([o for o, _ in kept], [g for _, g in kept])
    finally:
        _library.use_operators(False)
    for arg, saved in zip(args, before, strict=True):
        if saved is not None:
            assert torch.equal(arg.detach(), saved)
    for o, g in kept:
        assert torch.equal(g, torch.ones_like(o)), "an upstream gradient was written over"
