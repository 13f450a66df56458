"""LigerJSDFunction against a float64 oracle (see liger_kernel.ops.jsd).

The oracle is written here, from the contract's math, with torch autograd for
the gradient. It treats -inf log-probabilities (probability 0) as the
contract does, terms of zero probability being 0, for entries masked in both
distributions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import (
    compare_with_oracle,
    make,
    run_twice_bitwise,
    shape_id,
    targets,
)
from liger_conformance.tolerances import assert_close
from liger_kernel.ops import LigerJSDFunction

pytestmark = pytest.mark.liger_op("jsd")

#: (rows, vocab)
SHAPES = by_size(
    small=[(1, 7), (6, 130)],
    full=[(1, 7), (6, 130), (512, 32000), (64, 128 * 1024 + 7)],
)
BETAS = [0.0, 0.5, 1.0, 0.1]


def loss_scale(dtype: torch.dtype, rows: int, vocab: int) -> float:
    """fp16 training scales the loss (torch.amp.GradScaler): a mean JSD's
    gradient, about 1 / (rows * V) per element, is below fp16's range until it
    is scaled. The fp16 cases scale the loss by about rows * V / 16 (the 16
    leaves room for peaked distributions below fp16's largest value, 65504),
    and so check that the gradient survives until the scale reaches it."""
    return 2.0 ** max(0, math.floor(math.log2(rows * vocab)) - 4) if dtype == torch.float16 else 1.0


def _alive(log_prob: Tensor) -> tuple[Tensor, Tensor]:
    """(finite stand-in for ``log_prob``, its probability), 0 where it is -inf,
    so that autograd sees no 0 * inf."""
    alive = log_prob.detach() > float("-inf")
    safe = torch.where(alive, log_prob, 0.0)
    return safe, torch.where(alive, torch.exp(safe), 0.0)


def jsd_oracle(
    x: Tensor, y: Tensor, shift_labels: Tensor | None = None, beta: float = 0.5, ignore_index: int = -100
) -> Tensor:
    """Generalized JSD of student log-probabilities ``x`` and teacher ``y``, mean over kept rows."""
    x_safe, q = _alive(x)
    y_safe, p = _alive(y)
    if beta == 0.0:
        terms = p * (y_safe - x_safe)
    elif beta == 1.0:
        terms = q * (x_safe - y_safe)
    else:
        m = beta * p + (1 - beta) * q
        log_m = torch.log(torch.where(m.detach() > 0, m, 1.0))
        terms = beta * p * (y_safe - log_m) + (1 - beta) * q * (x_safe - log_m)
    row_loss = terms.sum(dim=-1)
    if shift_labels is None:
        return row_loss.sum() / max(x.shape[0], 1)
    kept = (shift_labels != ignore_index).to(row_loss.device)
    return torch.where(kept, row_loss, 0.0).sum() / kept.sum().clamp(min=1)


def log_probs(shape, dtype, device, rng, *, scale=2.0, layout="contiguous"):
    """Log-softmax of random logits, rounded to ``dtype``."""
    logits = make(shape, torch.float64, torch.device("cpu"), rng, scale=scale)
    values = torch.log_softmax(logits, dim=-1).to(dtype)
    if layout == "contiguous":
        return values.to(device)
    view = make(shape, dtype, device, rng, layout=layout)
    return view.copy_(values.to(device))


def run(input, target, shift_labels=None, beta=0.5, ignore_index=-100, *, dtype, rng, non_leaf=False):
    scale = loss_scale(dtype, *input.shape)
    return compare_with_oracle(
        lambda *a: LigerJSDFunction.apply(*a) * scale,
        lambda a: jsd_oracle(*a.values()) * scale,
        {"_input": input, "target": target, "shift_labels": shift_labels, "beta": beta, "ignore_index": ignore_index},
        dtype=dtype,
        rng=rng,
        grads=("_input",),
        outputs=("loss",),
        reduced=("loss",),
        output_dtypes={"loss": (torch.float32,)},
        non_leaf=("_input",) if non_leaf else (),
        overwrites=LigerJSDFunction.overwrites,
    )


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, beta):
    x = log_probs(shape, liger_dtype, liger_device, liger_rng)
    y = log_probs(shape, liger_dtype, liger_device, liger_rng)
    run(x, y, beta=beta, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("ignored", ["some", "all", "none"])
def test_shift_labels(liger_device, liger_dtype, liger_rng, ignored, beta):
    rows, vocab = 7, 50
    x = log_probs((rows, vocab), liger_dtype, liger_device, liger_rng)
    y = log_probs((rows, vocab), liger_dtype, liger_device, liger_rng)
    labels = targets(rows, vocab, liger_device, liger_rng, ignored=ignored)
    run(x, y, labels, beta, dtype=liger_dtype, rng=liger_rng)


def test_custom_ignore_index(liger_device, liger_dtype, liger_rng):
    x = log_probs((6, 40), liger_dtype, liger_device, liger_rng)
    y = log_probs((6, 40), liger_dtype, liger_device, liger_rng)
    labels = targets(6, 40, liger_device, liger_rng, ignore_index=3, dtype=torch.int32)
    run(x, y, labels, 0.3, 3, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_masked_and_vanishing_probabilities(liger_device, liger_dtype, liger_rng, beta):
    """-inf entries in both distributions (a masked vocabulary) and log-probabilities
    whose exponential underflows fp32 add nothing and keep the loss finite."""
    x = log_probs((4, 70), torch.float64, torch.device("cpu"), liger_rng)
    y = log_probs((4, 70), torch.float64, torch.device("cpu"), liger_rng)
    for values in (x, y):
        values[:, 60:] = float("-inf")
        values[:, 50:55] = -150.0
    run(
        x.to(liger_dtype).to(liger_device),
        y.to(liger_dtype).to(liger_device),
        beta=beta,
        dtype=liger_dtype,
        rng=liger_rng,
    )


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous(liger_device, liger_dtype, liger_rng, layout):
    x = log_probs((5, 37), liger_dtype, liger_device, liger_rng, layout=layout)
    y = log_probs((5, 37), liger_dtype, liger_device, liger_rng, layout=layout)
    run(x, y, beta=0.5, dtype=liger_dtype, rng=liger_rng)


def test_non_leaf_input(liger_device, liger_dtype, liger_rng):
    """The student's log-probabilities as a model makes them: a non-leaf tensor."""
    x = log_probs((5, 90), liger_dtype, liger_device, liger_rng)
    y = log_probs((5, 90), liger_dtype, liger_device, liger_rng)
    labels = targets(5, 90, liger_device, liger_rng)
    run(x, y, labels, 0.5, dtype=liger_dtype, rng=liger_rng, non_leaf=True)


def test_float32_teacher(liger_device, liger_dtype, liger_rng):
    """A teacher kept in fp32 against a student in the tested dtype."""
    x = log_probs((4, 64), liger_dtype, liger_device, liger_rng)
    y = log_probs((4, 64), torch.float32, liger_device, liger_rng)
    run(x, y, beta=0.5, dtype=liger_dtype, rng=liger_rng)


def test_through_log_softmax(liger_device, liger_dtype, liger_rng):
    """log_softmax keeps its output for its own backward: the op must not write over it."""
    logits = make((5, 48), liger_dtype, liger_device, liger_rng, scale=2.0).requires_grad_()
    y = log_probs((5, 48), liger_dtype, liger_device, liger_rng)
    loss = LigerJSDFunction.apply(torch.log_softmax(logits.float(), dim=-1).to(liger_dtype), y)
    loss.backward()
    reference = logits.detach().to("cpu", torch.float64).requires_grad_()
    jsd_oracle(torch.log_softmax(reference, dim=-1), y.to("cpu", torch.float64)).backward()
    assert_close(
        loss,
        jsd_oracle(torch.log_softmax(reference.detach(), dim=-1), y.to("cpu", torch.float64)),
        liger_dtype,
        "loss",
        "reduced",
    )
    assert_close(logits.grad, reference.grad, liger_dtype, "gradient of the logits")


def test_no_grad(liger_device, liger_dtype, liger_rng):
    x = log_probs((3, 40), liger_dtype, liger_device, liger_rng).requires_grad_()
    y = log_probs((3, 40), liger_dtype, liger_device, liger_rng)
    with torch.no_grad():
        loss = LigerJSDFunction.apply(x, y)
    assert not loss.requires_grad
    expected = jsd_oracle(x.detach().to("cpu", torch.float64), y.to("cpu", torch.float64))
    assert_close(loss, expected, liger_dtype, "loss", "reduced")


def test_deterministic(liger_device, liger_dtype, liger_rng):
    x = log_probs((5, 300), liger_dtype, liger_device, liger_rng)
    y = log_probs((5, 300), liger_dtype, liger_device, liger_rng)
    labels = targets(5, 300, liger_device, liger_rng)

    def once():
        leaf = x.clone().requires_grad_()
        loss = LigerJSDFunction.apply(leaf, y, labels, 0.5)
        loss.backward(torch.tensor(0.7, dtype=loss.dtype, device=loss.device))
        return loss, leaf.grad

    run_twice_bitwise(once, "jsd")


@pytest.mark.parametrize("case", bad_inputs.cases("jsd"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)


def test_implementation_choice(liger_device, liger_dtype, liger_rng, liger_backend):
    """0.8.5's jsd_impl / jsd_mode: jsd_impl names the backend the call routes to, jsd_mode must be None."""
    x = log_probs((5, 33), liger_dtype, liger_device, liger_rng)
    y = log_probs((5, 33), liger_dtype, liger_device, liger_rng)
    chosen = LigerJSDFunction.apply(x, y, None, 0.3, -100, liger_backend, None)
    torch.testing.assert_close(chosen, LigerJSDFunction.apply(x, y, None, 0.3))
    with pytest.raises(ValueError, match="jsd_mode"):
        LigerJSDFunction.apply(x, y, jsd_mode="cute")
