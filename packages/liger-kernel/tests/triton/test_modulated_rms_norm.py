"""Modulated RMSNorm kernels against the torch backend in float64, on both the
one-block and the walk-in-blocks paths of the fake two-program profile, for
each way the backward cuts its work (chunks of a shared modulation row, one
item per sample, one row per item)."""

from __future__ import annotations

import pytest
import torch

from liger_kernel.backends.torch.modulated_rms_norm import ModulatedRMSNormFunction as TorchFunction
from liger_kernel.triton.modulated_rms_norm import ModulatedRMSNormFunction

EPS = 1e-6


def leaves(*tensors):
    return [t.detach().clone().requires_grad_() if t is not None else None for t in tensors]


@pytest.mark.parametrize("modulation", [(40,), (3, 40), (3, 7, 40)], ids=["shared", "per_sample", "per_token"])
@pytest.mark.parametrize("mode", ["llama", "gemma", "none"])
def test_matches_the_torch_backend(profile, assert_close, modulation, mode):
    torch.manual_seed(0)
    x, w = torch.randn(3, 7, 40), torch.rand(40) + 0.5
    scale, shift = 0.3 * torch.randn(modulation), 0.3 * torch.randn(modulation)
    dy = torch.randn(3, 7, 40)
    ours = leaves(x, w, scale, shift)
    y = ModulatedRMSNormFunction.apply(*ours, EPS, 1.0, mode)
    y.backward(dy)
    ref = leaves(*(t.double() for t in (x, w, scale, shift)))
    y64 = TorchFunction.apply(*ref, EPS, 1.0, mode)
    y64.backward(dy.double())
    assert_close(y, y64, torch.float32)
    for a, b in zip(ours, ref):
        assert_close(a.grad, b.grad, torch.float32, scale=4)


def test_only_the_requested_gradients(profile, assert_close):
    """dshift without a shift, dW without a weight, and nothing for inputs
    that need no gradient."""
    torch.manual_seed(1)
    x, scale = torch.randn(5, 24).requires_grad_(), (0.3 * torch.randn(24)).requires_grad_()
    y = ModulatedRMSNormFunction.apply(x, None, scale, None, EPS)
    y.sum().backward()
    x64, s64 = leaves(x.double(), scale.double())
    TorchFunction.apply(x64, None, s64, None, EPS).sum().backward()
    assert_close(x.grad, x64.grad, torch.float32)
    assert_close(scale.grad, s64.grad, torch.float32, scale=4)
    frozen = torch.randn(24)
    x.grad = None
    ModulatedRMSNormFunction.apply(x, None, frozen, None, EPS).sum().backward()
    assert x.grad is not None and frozen.grad is None
