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
from collections.abc import Callable
from typing import Any

import pytest
import torch

from liger_kernel.ops import OPS, _library

# (device, rng) -> (positional args, names of the args that require grad)
Sample = Callable[[torch.device, torch.Generator], tuple[tuple[Any, ...], tuple[int, ...]]]


def _randn(rng: torch.Generator, device: torch.device, *shape: int, scale: float = 1.0, shift: float = 0.0):
    return (torch.randn(shape, generator=rng) * scale + shift).to(device)


def _targets(rng: torch.Generator, device: torch.device, rows: int, vocab: int) -> torch.Tensor:
    target = torch.randint(0, vocab, (rows,), generator=rng)
    target[1] = -100
    return target.to(device)


def _log_probs(rng, device, rows, vocab):
    return torch.log_softmax(_randn(rng, device, rows, vocab), dim=-1)


def _rope_tables(rng, device, *leading):
    angles = _randn(rng, device, *leading)
    return angles.cos(), angles.sin()


SAMPLES: dict[str, Sample] = {
    "rms_norm": lambda d, g: (
        (_randn(g, d, 3, 5, 16), _randn(g, d, 16, shift=1.0), 1e-6, 0.0, "llama", True, None),
        (0, 1),
    ),
    "fused_add_rms_norm": lambda d, g: (
        (_randn(g, d, 4, 16), _randn(g, d, 4, 16), _randn(g, d, 16, shift=1.0), 1e-6, 0.0, "llama", False),
        (0, 1, 2),
    ),
    "layer_norm": lambda d, g: ((_randn(g, d, 4, 16), _randn(g, d, 16, shift=1.0), _randn(g, d, 16), 1e-6), (0, 1, 2)),
    "rope": lambda d, g: (
        (_randn(g, d, 2, 4, 6, 8), _randn(g, d, 2, 2, 6, 8), *_rope_tables(g, d, 1, 6, 8), None, 1),
        (0, 1),
    ),
    "swiglu": lambda d, g: ((_randn(g, d, 4, 16), _randn(g, d, 4, 16)), (0, 1)),
    "geglu": lambda d, g: ((_randn(g, d, 4, 16), _randn(g, d, 4, 16)), (0, 1)),
    "cross_entropy": lambda d, g: (
        (_randn(g, d, 6, 20), _targets(g, d, 6, 20), None, -100, 1e-4, 0.1, "mean", None, True, True, True),
        (0,),
    ),
    "fused_linear_cross_entropy": lambda d, g: (
        (
            _randn(g, d, 6, 8),
            _randn(g, d, 20, 8, scale=0.3),
            _targets(g, d, 6, 20),
            _randn(g, d, 20),
            None,
            -100,
            0.0,
            0.0,
            "mean",
            None,
            False,
            None,
            False,
            False,
            False,
        ),
        (0, 1, 3),
    ),
    "kl_div": lambda d, g: ((_log_probs(g, d, 4, 10), _log_probs(g, d, 4, 10).exp(), "batchmean", False, 1e-10), (0,)),
    "jsd": lambda d, g: ((_log_probs(g, d, 6, 10), _log_probs(g, d, 6, 10), None, 0.5, -100), (0,)),
    "fused_linear_jsd": lambda d, g: (
        (
            _randn(g, d, 6, 8),
            _randn(g, d, 10, 8, scale=0.3),
            _randn(g, d, 6, 8),
            _randn(g, d, 10, 8, scale=0.3),
            None,
            0.5,
            -100,
            1.0,
        ),
        (0, 1),
    ),
    "tvd": lambda d, g: ((_log_probs(g, d, 4, 10).exp(), _log_probs(g, d, 4, 10).exp(), None, "batchmean", -100), (0,)),
    "softmax": lambda d, g: ((_randn(g, d, 4, 16),), (0,)),
    "sparsemax": lambda d, g: ((_randn(g, d, 4, 16), -1), (0,)),
    "group_norm": lambda d, g: (
        (_randn(g, d, 2, 8, 5), _randn(g, d, 8, shift=1.0), _randn(g, d, 8), 8, 4, 1e-6),
        (0, 1, 2),
    ),
    "dyt": lambda d, g: (
        (_randn(g, d, 4, 16), _randn(g, d, 1, shift=0.5), _randn(g, d, 16), _randn(g, d, 16)),
        (0, 1, 2, 3),
    ),
    "poly_norm": lambda d, g: (
        (_randn(g, d, 4, 16), _randn(g, d, 3, scale=0.1, shift=0.3), _randn(g, d, 1), 1e-6, True),
        (0, 1, 2),
    ),
    "qwen2vl_mrope": lambda d, g: (
        (_randn(g, d, 2, 4, 6, 8), _randn(g, d, 2, 2, 6, 8), *_rope_tables(g, d, 3, 2, 6, 8), [2, 1, 1], 1),
        (0, 1),
    ),
}


def sample(op: str, device: torch.device, rng: torch.Generator) -> tuple[Any, ...]:
    args, grads = SAMPLES[op](device, rng)
    return tuple(a.requires_grad_() if i in grads else a for i, a in enumerate(args))


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
