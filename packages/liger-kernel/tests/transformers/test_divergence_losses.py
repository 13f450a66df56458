"""LigerKLDIVLoss, LigerTVDLoss and their functional forms, against torch.

The conformance suite checks the ops against a float64 oracle on every
backend; these tests check the Transformers-facing layer: argument order,
defaults, drop-in behaviour next to ``torch.nn.KLDivLoss``.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from liger_kernel.transformers import LigerKLDIVLoss, LigerTVDLoss
from liger_kernel.transformers import functional as LF


def log_probs(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).log_softmax(-1)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")  # torch's own note on "mean"
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_module_is_a_drop_in_for_torch(reduction, log_target):
    """Same loss and input gradient as torch.nn.KLDivLoss, 3-D input included
    ("batchmean" divides by the first dimension, as torch does)."""
    y_pred = log_probs(2, 3, 17).requires_grad_()
    y_true = log_probs(2, 3, 17, seed=1)
    if not log_target:
        y_true = y_true.exp()
    module = LigerKLDIVLoss(reduction=reduction, log_target=log_target)
    assert isinstance(module, torch.nn.KLDivLoss)
    loss = module(y_pred, y_true)
    reference_input = y_pred.detach().clone().requires_grad_()
    expected = torch.nn.KLDivLoss(reduction=reduction, log_target=log_target)(reference_input, y_true)
    torch.testing.assert_close(loss, expected)
    cotangent = torch.randn(loss.shape)
    loss.backward(cotangent)
    expected.backward(cotangent)
    torch.testing.assert_close(y_pred.grad, reference_input.grad)


def test_kl_div_module_takes_eps_first():
    module = LigerKLDIVLoss(1e-3, reduction="batchmean")
    assert (module.eps, module.reduction, module.log_target) == (1e-3, "batchmean", False)
    y_pred = log_probs(4, 9)
    y_true = torch.zeros(4, 9)
    y_true[:, 0] = 1e-5  # below eps: measured against log(eps)
    loss = module(y_pred, y_true)
    expected = (1e-5 * (torch.log(torch.tensor(1e-3)) - y_pred[:, 0])).sum() / 4
    torch.testing.assert_close(loss, expected)
    with pytest.raises(ValueError, match="eps"):
        LigerKLDIVLoss(0.0)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_functional_kl_div_has_torchs_argument_order():
    parameters = list(inspect.signature(LF.liger_kl_div).parameters)
    assert parameters == ["input", "target", "size_average", "reduce", "reduction", "log_target", "eps"]
    y_pred, y_true = log_probs(3, 11), log_probs(3, 11, seed=2).exp()
    torch.testing.assert_close(LF.liger_kl_div(y_pred, y_true), F.kl_div(y_pred, y_true, reduction="mean"))


def test_tvd_module_and_functional():
    p = log_probs(5, 13).exp().requires_grad_()
    q = log_probs(5, 13, seed=3).exp()
    labels = torch.tensor([0, -100, 2, 3, -100])
    loss = LigerTVDLoss()(p, q, labels)
    kept = labels != -100
    expected = 0.5 * (p.detach()[kept] - q[kept]).abs().sum() / kept.sum()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    expected_grad = 0.5 * torch.sign(p.detach() - q) / kept.sum() * kept.unsqueeze(1)
    torch.testing.assert_close(p.grad, expected_grad)
    # the functional form defaults to "mean": divided by kept rows times V
    torch.testing.assert_close(LF.liger_tvd(p.detach(), q, labels), expected / 13)
    with pytest.raises(ValueError, match="reduction"):
        LigerTVDLoss(reduction="average")
