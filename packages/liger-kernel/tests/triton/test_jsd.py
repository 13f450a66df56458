"""The portable JSD kernel (log-probability and logits modes) and the fused linear
JSD against float64 formulas, under the interpreter. The ``profile`` fixture
runs every case with a block wider than the rows and with 16-column blocks,
so the walk over vocabulary blocks (online log-sum-exp included) is covered."""

from __future__ import annotations

import pytest
import torch

from liger_kernel.triton import fused_linear_jsd as fused_module
from liger_kernel.triton.fused_linear_jsd import FusedLinearJSDFunction
from liger_kernel.triton.jsd import JSDFunction


def jsd64(x: torch.Tensor, y: torch.Tensor, beta: float, labels=None, ignore_index: int = -100) -> torch.Tensor:
    p, q = y.exp(), x.exp()
    if beta == 0.0:
        terms = p * (y - x)
    elif beta == 1.0:
        terms = q * (x - y)
    else:
        log_m = (beta * p + (1 - beta) * q).log()
        terms = beta * p * (y - log_m) + (1 - beta) * q * (x - log_m)
    rows = terms.sum(-1)
    if labels is None:
        return rows.mean()
    kept = labels != ignore_index
    return torch.where(kept, rows, 0.0).sum() / kept.sum().clamp(min=1)


def log_probs(rows: int, vocab: int, generator: torch.Generator) -> torch.Tensor:
    return torch.log_softmax(torch.randn(rows, vocab, generator=generator, dtype=torch.float64) * 2, -1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_jsd_matches_float64(profile, assert_close, dtype, beta):
    generator = torch.Generator().manual_seed(0)
    x64, y64 = log_probs(5, 70, generator), log_probs(5, 70, generator)
    labels = torch.tensor([3, -100, 7, 1, -100])
    x = x64.to(dtype).requires_grad_()
    loss = JSDFunction.apply(x, y64.to(dtype), labels, beta, -100)
    # a large incoming gradient, as a loss scale gives: fp16 takes the replay path
    loss.backward(torch.tensor(512.0))
    ref_x = x64.to(dtype).double().requires_grad_()
    ref = jsd64(ref_x, y64.to(dtype).double(), beta, labels)
    (ref * 512).backward()
    assert loss.dtype == torch.float32
    assert_close(loss, ref, dtype, scale=4)
    assert x.grad.dtype == dtype
    assert_close(x.grad / 512, ref_x.grad / 512, dtype, scale=4)
    assert torch.all(x.grad[1] == 0) and torch.all(x.grad[4] == 0)


def fused64(xs, ws, xt, wt, beta, temperature, labels=None):
    student = torch.log_softmax(xs @ ws.T / temperature, -1)
    teacher = torch.log_softmax(xt @ wt.T / temperature, -1)
    return jsd64(student, teacher, beta, labels)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("beta", "temperature"), [(0.0, 1.0), (0.5, 2.0), (1.0, 0.7)])
@pytest.mark.parametrize("labels", [False, True], ids=["no_labels", "labels"])
def test_fused_linear_jsd_in_chunks(profile, assert_close, monkeypatch, dtype, beta, temperature, labels):
    """Several chunks of three rows, with ignored rows gathered out of them."""
    monkeypatch.setattr(fused_module, "chunk_rows", lambda n_rows, hidden, vocab: 3)
    generator = torch.Generator().manual_seed(1)
    rows, hidden, vocab = 10, 8, 50
    xs = torch.randn(rows, hidden, generator=generator, dtype=torch.float64)
    ws = torch.randn(vocab, hidden, generator=generator, dtype=torch.float64) * hidden**-0.5
    xt = torch.randn(rows, 12, generator=generator, dtype=torch.float64)
    wt = torch.randn(vocab, 12, generator=generator, dtype=torch.float64) * 2 * 12**-0.5
    shift_labels = torch.tensor([1, -100, 4, 4, -100, -100, 9, 2, 0, -100]) if labels else None
    leaves = [t.to(dtype).requires_grad_() for t in (xs, ws)]
    loss = FusedLinearJSDFunction.apply(*leaves, xt.to(dtype), wt.to(dtype), shift_labels, beta, -100, temperature)
    loss.backward(torch.tensor(256.0))
    refs = [t.to(dtype).double().requires_grad_() for t in (xs, ws)]
    ref = fused64(*refs, xt.to(dtype).double(), wt.to(dtype).double(), beta, temperature, shift_labels)
    (ref * 256).backward()
    assert_close(loss, ref, dtype, scale=4)
    for got, want in zip(leaves, refs):
        assert got.grad.dtype == dtype
        assert_close(got.grad / 256, want.grad / 256, dtype, scale=8)
    if labels:
        assert torch.all(leaves[0].grad[shift_labels == -100] == 0)


def test_fused_linear_jsd_all_rows_ignored(profile):
    xs = torch.randn(4, 8, requires_grad=True)
    ws = torch.randn(20, 8, requires_grad=True)
    loss = FusedLinearJSDFunction.apply(xs, ws, torch.randn(4, 8), torch.randn(20, 8), torch.full((4,), -100))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(xs.grad == 0) and torch.all(ws.grad == 0)


def test_chunk_rows_bounds_the_logits():
    # each head's chunk of logits is about the size of the input, in multiples of 64 rows
    assert fused_module.chunk_rows(8192, 4096, 128256) == 256
    assert fused_module.chunk_rows(100, 16, 1000) == 64
    assert fused_module.chunk_rows(10, 16, 1000) == 10
