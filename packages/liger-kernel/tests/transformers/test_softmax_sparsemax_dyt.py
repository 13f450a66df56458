"""LigerSoftmax, LigerSparsemax and LigerDyT, and their functional forms,
against plain PyTorch definitions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from liger_kernel.transformers import LigerDyT, LigerSoftmax, LigerSparsemax
from liger_kernel.transformers import functional as LF

TOL = dict(rtol=1e-5, atol=1e-5)


class ReferenceDyT(nn.Module):
    """Dynamic Tanh as its paper writes it."""

    def __init__(self, hidden_size: int, init_alpha: float) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1) * init_alpha)
        self.gamma = nn.Parameter(torch.ones(hidden_size))
        self.beta = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.tanh(self.alpha * x) + self.beta


def sparsemax_by_sorting(x: torch.Tensor, dim: int) -> torch.Tensor:
    z = x.movedim(dim, -1)
    ordered = z.sort(dim=-1, descending=True).values
    cumulative = ordered.cumsum(-1)
    ranks = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    size = ((1 + ranks * ordered > cumulative) * ranks).amax(-1, keepdim=True)
    tau = (cumulative.gather(-1, size.long() - 1) - 1) / size
    return (z - tau).clamp(min=0).movedim(-1, dim)


def test_softmax_module_and_functional_match_torch():
    x = torch.randn(3, 5, 17, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    dy = torch.randn(3, 5, 17)
    LigerSoftmax()(x).backward(dy)
    torch.softmax(x_ref, dim=-1).backward(dy)
    torch.testing.assert_close(x.grad, x_ref.grad, **TOL)
    torch.testing.assert_close(LF.liger_softmax(x.detach()), torch.softmax(x.detach(), dim=-1), **TOL)


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_sparsemax_module_and_functional(dim):
    module = LigerSparsemax(dim=dim)
    assert module.dim == dim and f"dim={dim}" in repr(module)
    x = torch.randn(4, 6, 9, dtype=torch.float64) * 0.5
    expected = sparsemax_by_sorting(x, dim)
    torch.testing.assert_close(module(x.float()).double(), expected, **TOL)
    torch.testing.assert_close(LF.liger_sparsemax(x.float(), dim=dim).double(), expected, **TOL)
    # sparse: some entries exactly 0, and every slice along dim sums to 1
    assert (module(x.float()) == 0).any()
    torch.testing.assert_close(module(x.float()).sum(dim), torch.ones(expected.sum(dim).shape), **TOL)


def test_dyt_parameters_follow_the_constructor():
    layer = LigerDyT(12, init_alpha=0.8)
    assert layer.alpha.shape == (1,) and layer.alpha.item() == pytest.approx(0.8)
    assert torch.equal(layer.gamma, torch.ones(12)) and torch.equal(layer.beta, torch.zeros(12))
    no_beta = LigerDyT(12, beta=False)
    assert no_beta.beta is None and no_beta.alpha.item() == pytest.approx(0.5)
    assert [name for name, _ in no_beta.named_parameters()] == ["alpha", "gamma"]


@pytest.mark.parametrize("beta", [True, False])
def test_dyt_matches_reference_and_loads_its_state_dict(beta):
    ref = ReferenceDyT(16, init_alpha=0.7)
    with torch.no_grad():
        ref.gamma.normal_()
        ref.beta.normal_()
        if not beta:
            ref.beta.zero_()
    ours = LigerDyT(16, beta=beta, init_alpha=0.1)
    state = ref.state_dict() if beta else {k: v for k, v in ref.state_dict().items() if k != "beta"}
    ours.load_state_dict(state)
    x = torch.randn(2, 5, 16) * 2
    dy = torch.randn(2, 5, 16)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours(x_ours).backward(dy)
    ref(x_ref).backward(dy)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, **TOL)
    torch.testing.assert_close(ours.alpha.grad, ref.alpha.grad, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ours.gamma.grad, ref.gamma.grad, **TOL)
    if beta:
        torch.testing.assert_close(ours.beta.grad, ref.beta.grad, **TOL)
    functional = LF.liger_dyt(x, ref.alpha, ref.gamma, ref.beta if beta else None)
    torch.testing.assert_close(
        functional, ref(x).detach() if beta else (ref.gamma * torch.tanh(ref.alpha * x)).detach(), **TOL
    )
