"""Sparsemax kernels against a sort-based float64 formula, in one block and
walked in blocks."""

from __future__ import annotations

import pytest
import torch

from liger_kernel.triton.sparsemax import SparsemaxFunction


def reference(x: torch.Tensor, dim: int) -> torch.Tensor:
    z = x.movedim(dim, -1)
    ordered = z.sort(dim=-1, descending=True).values
    cumulative = ordered.cumsum(-1)
    ranks = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    size = ((1 + ranks * ordered > cumulative) * ranks).amax(-1, keepdim=True)
    tau = (cumulative.gather(-1, size.long() - 1) - 1) / size
    support = (z > tau).detach()
    tau = ((z * support).sum(-1, keepdim=True) - 1) / support.sum(-1, keepdim=True)
    return ((z - tau) * support).movedim(-1, dim)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("shape", "dim"), [((1, 5), -1), ((3, 40), -1), ((2, 40, 3), 1), ((4, 70), 0)])
@pytest.mark.parametrize("scale", [0.1, 3.0])
def test_sparsemax_matches_float64(profile, assert_close, dtype, shape, dim, scale):
    torch.manual_seed(0)
    x = (torch.randn(shape) * scale).to(dtype)
    dy = torch.randn(shape).to(dtype)
    xk = x.clone().requires_grad_()
    y = SparsemaxFunction.apply(xk, dim)
    y.backward(dy)
    x64 = x.double().requires_grad_()
    y64 = reference(x64, dim)
    y64.backward(dy.double())
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, y64, dtype, scale=2)
    assert_close(xk.grad, x64.grad, dtype, scale=2)
    assert_close(y.double().sum(dim), torch.ones(y.sum(dim).shape, dtype=torch.float64), dtype, scale=2)


def test_sparsemax_wide_support_takes_many_steps(profile, assert_close):
    """Evenly spread rows keep much of the row in the support and need several
    fixed-point steps; the threshold must still be exact."""
    x = -torch.linspace(0, 1, 97, dtype=torch.float64).repeat(3, 1).float()
    x[1] = x[1] * 0.01
    x[2, 5:] = x[2, 4]  # ties just below the top
    y = SparsemaxFunction.apply(x, -1)
    assert_close(y, reference(x.double(), -1), torch.float32)
