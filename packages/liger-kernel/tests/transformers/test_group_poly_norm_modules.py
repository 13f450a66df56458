"""LigerGroupNorm and LigerPolyNorm: constructors, parameters and the module
and functional forms against torch and the PolyCom formula (CPU, torch backend)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from liger_kernel.transformers import LigerGroupNorm, LigerPolyNorm
from liger_kernel.transformers.functional import liger_group_norm, liger_poly_norm


def test_group_norm_matches_torch_with_trained_parameters():
    torch.manual_seed(0)
    module = LigerGroupNorm(6, 3, eps=1e-5, bias=True)
    with torch.no_grad():
        module.weight.normal_()
        module.bias.normal_()
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    module.double()
    ref = torch.nn.GroupNorm(3, 6, eps=1e-5).double()
    ref.load_state_dict(module.state_dict())
    y, y_ref = module(x), ref(x_ref)
    torch.testing.assert_close(y, y_ref)
    dy = torch.randn_like(y)
    y.backward(dy)
    y_ref.backward(dy)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(module.weight.grad, ref.weight.grad)
    torch.testing.assert_close(module.bias.grad, ref.bias.grad)


def test_group_norm_constructor():
    module = LigerGroupNorm(8, 2)
    assert module.num_channels == 8 and module.num_groups == 2 and module.eps == 1e-6
    assert torch.equal(module.weight, torch.ones(8)) and module.bias is None
    assert torch.equal(LigerGroupNorm(8, 4, init_fn="zeros").weight, torch.zeros(8))
    assert torch.equal(LigerGroupNorm(8, 4, bias=True).bias, torch.zeros(8))
    assert "num_groups=2" in repr(module)
    with pytest.raises(ValueError, match="init_fn"):
        LigerGroupNorm(8, 2, init_fn="normal")
    with pytest.raises(ValueError, match="num_groups"):
        LigerGroupNorm(8, 3)


def test_group_norm_without_bias_and_functional_form():
    torch.manual_seed(1)
    x, w = torch.randn(3, 4, 7), torch.randn(4)
    y = LigerGroupNorm(4, 2)(x)
    torch.testing.assert_close(y, F.group_norm(x, 2, eps=1e-6))
    torch.testing.assert_close(liger_group_norm(x, w, None, 4, 2, 1e-6), F.group_norm(x, 2, w, eps=1e-6))
    with pytest.raises(ValueError, match="num_channels"):
        LigerGroupNorm(4, 2)(torch.randn(3, 8, 7))


def polycom(x, w, b, eps):
    def norm(u):
        return u / torch.sqrt(u.pow(2).mean(-1, keepdim=True) + eps)

    return w[0] * norm(x**3) + w[1] * norm(x**2) + w[2] * norm(x) + b


def test_poly_norm_initialisation_matches_polycom():
    module = LigerPolyNorm()
    torch.testing.assert_close(module.weight.detach(), torch.full((3,), 1 / 3))
    assert module.bias.shape == (1,) and module.bias.item() == 0.0
    assert module.eps == 1e-6 and module.in_place
    assert "in_place=True" in repr(module)


@pytest.mark.parametrize("in_place", [True, False])
def test_poly_norm_module_matches_polycom(in_place):
    torch.manual_seed(2)
    module = LigerPolyNorm(eps=1e-5, in_place=in_place).double()
    with torch.no_grad():
        module.weight.copy_(torch.tensor([0.2, -0.5, 0.9]))
        module.bias.fill_(0.3)
    x = torch.randn(2, 3, 16, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    w_ref, b_ref = (p.detach().clone().requires_grad_() for p in (module.weight, module.bias))
    y, y_ref = module(x), polycom(x_ref, w_ref, b_ref, 1e-5)
    torch.testing.assert_close(y, y_ref)
    dy = torch.randn_like(y)
    y.backward(dy)
    y_ref.backward(dy)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(module.weight.grad, w_ref.grad)
    torch.testing.assert_close(module.bias.grad, b_ref.grad)


def test_poly_norm_functional_form_and_defaults():
    torch.manual_seed(3)
    x, w, b = torch.randn(4, 10), torch.randn(3), torch.randn(())
    torch.testing.assert_close(liger_poly_norm(x, w, b), polycom(x, w, b, 1e-6))
    torch.testing.assert_close(liger_poly_norm(x, w, b, 1e-2, False), polycom(x, w, b, 1e-2))
