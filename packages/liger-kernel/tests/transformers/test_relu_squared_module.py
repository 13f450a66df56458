"""LigerReLUSquared and liger_relu_squared against Transformers' relu2 activation."""

from __future__ import annotations

import torch
from transformers.activations import ACT2FN

from liger_kernel.transformers import LigerReLUSquared
from liger_kernel.transformers import functional as LF


def test_module_and_functional_match_transformers_relu2():
    stock = ACT2FN["relu2"]
    ours = LigerReLUSquared()
    assert list(ours.parameters()) == []
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 16, generator=g)
    dy = torch.randn(3, 5, 16, generator=g)
    grads = []
    for function in (stock, ours, LF.liger_relu_squared):
        leaf = x.clone().requires_grad_()
        y = function(leaf)
        y.backward(dy)
        grads.append((y.detach(), leaf.grad))
    for y, dx in grads[1:]:
        torch.testing.assert_close(y, grads[0][0])
        torch.testing.assert_close(dx, grads[0][1])
