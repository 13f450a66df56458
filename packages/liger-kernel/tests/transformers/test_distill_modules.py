"""LigerFusedLinearKLDivLoss and LigerFusedCETVDLoss (with their functional and 0.8.5
helper forms) as a distillation script uses them, against the same losses written
with torch ops (torch.nn.functional.kl_div and cross_entropy)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import liger_kernel.ops as lo
import liger_kernel.transformers as lt
from liger_kernel.ops.fused_linear_kl_div import fused_linear_kl_div_backward, fused_linear_kl_div_forward
from liger_kernel.transformers import LigerFusedCETVDLoss, LigerFusedLinearKLDivLoss
from liger_kernel.transformers import functional as LF
from liger_kernel.transformers.fused_ce_tvd import LigerFusedCETVDLoss as CETVDFromModule
from liger_kernel.transformers.fused_linear_kl_div import LigerFusedLinearKLDivLoss as KLFromModule


def torch_kl(hidden, head, target, labels=None, reduction="batchmean", temperature=1.0, ignore_index=-100):
    """torch.nn.KLDivLoss over the kept rows of the head's tempered distribution."""
    kept = torch.ones(hidden.shape[0], dtype=torch.bool) if labels is None else labels != ignore_index
    log_s = torch.log_softmax(hidden[kept] @ head.T / temperature, dim=-1)
    loss = F.kl_div(log_s, target[kept], reduction="sum")
    count = max(int(kept.sum()), 1)
    return loss / {"batchmean": count, "mean": count * head.shape[0], "sum": 1}[reduction]


def test_exports():
    assert lt.LigerFusedLinearKLDivLoss is KLFromModule and lt.LigerFusedCETVDLoss is CETVDFromModule
    assert {"LigerFusedLinearKLDivLoss", "LigerFusedCETVDLoss"} <= set(lt.__all__)
    assert {"LigerFusedLinearKLDivFunction", "LigerFusedCETVDFunction", "fused_linear_kl_div_forward"} <= set(
        lo.__all__
    )


@pytest.mark.parametrize("reduction", ["batchmean", "mean", "sum"])
def test_fused_linear_kl_div_module_matches_torch(reduction):
    torch.manual_seed(0)
    hidden = torch.randn(7, 16, dtype=torch.float64, requires_grad=True)
    head = torch.nn.Linear(16, 50, bias=False).double()
    target = torch.randn(7, 50, dtype=torch.float64).mul(2).softmax(-1)
    labels = torch.tensor([1, 2, -100, 3, 4, -100, 5])
    loss_fn = LigerFusedLinearKLDivLoss(reduction=reduction, temperature=2.0)
    loss = loss_fn(hidden, head.weight, target, labels)
    grads = torch.autograd.grad(loss, (hidden, head.weight))
    reference = torch_kl(hidden, head.weight, target, labels, reduction, temperature=2.0)
    ref_grads = torch.autograd.grad(reference, (hidden, head.weight))
    torch.testing.assert_close(loss, reference)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)
    functional = LF.liger_fused_linear_kl_div(hidden, head.weight, target, labels, reduction, temperature=2.0)
    torch.testing.assert_close(functional, reference)
    assert f"reduction={reduction}" in repr(loss_fn)


def test_fused_linear_kl_div_module_refuses_bad_options_when_built():
    with pytest.raises(ValueError, match="reduction"):
        LigerFusedLinearKLDivLoss(reduction="none")
    with pytest.raises(ValueError, match="temperature"):
        LigerFusedLinearKLDivLoss(temperature=0.0)
    with pytest.raises(ValueError, match="eps"):
        LigerFusedLinearKLDivLoss(eps=0.0)


def test_fused_linear_kl_div_halves_of_0_8_5():
    """fused_linear_kl_div_forward gives the loss and the gradients of the op for an
    incoming gradient of 1; fused_linear_kl_div_backward scales them, writing nothing."""
    torch.manual_seed(2)
    hidden = torch.randn(5, 8, dtype=torch.float64)
    weight = torch.randn(30, 8, dtype=torch.float64, requires_grad=True)
    target = torch.randn(5, 30, dtype=torch.float64).softmax(-1)
    labels = torch.tensor([0, -100, 3, 4, 5])
    loss, d_hidden, d_weight = fused_linear_kl_div_forward(
        hidden, weight, target, labels, "batchmean", -100, True, 1.0, 1e-10
    )
    x, w = hidden.clone().requires_grad_(), weight.detach().clone().requires_grad_()
    reference = torch_kl(x, w, target, labels)
    ref_x, ref_w = torch.autograd.grad(reference, (x, w))
    torch.testing.assert_close(loss, reference.detach())
    torch.testing.assert_close(d_hidden, ref_x)
    torch.testing.assert_close(d_weight, ref_w)
    kept_hidden, kept_weight = d_hidden.clone(), d_weight.clone()
    scaled_hidden, scaled_weight = fused_linear_kl_div_backward(
        torch.tensor(3.0, dtype=torch.float64), d_hidden, d_weight
    )
    torch.testing.assert_close(scaled_hidden, 3 * ref_x)
    torch.testing.assert_close(scaled_weight, 3 * ref_w)
    assert torch.equal(d_hidden, kept_hidden) and torch.equal(d_weight, kept_weight)
    # a weight without grad gets no gradient
    _, _, none = fused_linear_kl_div_forward(hidden, weight.detach(), target, None, "sum", -100, False, 1.0, 1e-10)
    assert none is None
    with pytest.raises(ValueError, match="has_label"):
        fused_linear_kl_div_forward(hidden, weight, target, None, "sum", -100, True, 1.0, 1e-10)


def test_fused_linear_kl_div_second_backward_warns():
    """The gradients are formed in forward and handed on, scaled, by the first backward:
    a second backward over the graph cannot recover them and says so."""
    hidden = torch.randn(4, 8, requires_grad=True)
    weight = torch.randn(20, 8, requires_grad=True)
    target = torch.randn(4, 20).softmax(-1)
    loss = LigerFusedLinearKLDivLoss()(hidden, weight, target)
    loss.backward(retain_graph=True)
    with pytest.warns(UserWarning, match="second backward"):
        loss.backward()


def test_fused_ce_tvd_module_matches_torch():
    torch.manual_seed(3)
    student = torch.randn(6, 40, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(6, 40, dtype=torch.float64) * 2
    target = torch.tensor([1, 2, -100, 3, 39, 0])
    ce, tvd = LigerFusedCETVDLoss()(student, teacher, target)
    kept = target != -100
    ref_ce = F.cross_entropy(student, target, reduction="none", ignore_index=-100)
    ref_tvd = 0.5 * (student.softmax(-1) - teacher.softmax(-1)).abs().sum(-1) * kept
    torch.testing.assert_close(ce, ref_ce)
    torch.testing.assert_close(tvd, ref_tvd)
    weights = torch.rand(6, dtype=torch.float64)
    (grad,) = torch.autograd.grad((ce * weights).sum() + 0.5 * tvd.sum(), student)
    (ref_grad,) = torch.autograd.grad((ref_ce * weights).sum() + 0.5 * ref_tvd.sum(), student)
    torch.testing.assert_close(grad, ref_grad)
    assert ce.dtype == tvd.dtype == torch.float64 and ce.shape == tvd.shape == (6,)
    with pytest.raises(TypeError, match="ignore_index"):
        LigerFusedCETVDLoss(ignore_index=-100.0)
