"""LigerJSD and LigerFusedLinearJSD (and their functional forms) as a
distillation script uses them, against the same loss written with torch ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import liger_kernel.transformers as lt
from liger_kernel.transformers import LigerFusedLinearJSD, LigerJSD
from liger_kernel.transformers import functional as LF
from liger_kernel.transformers.fused_linear_jsd import LigerFusedLinearJSD as FromModule
from liger_kernel.transformers.jsd import LigerJSD as JSDFromModule


def torch_jsd(log_q, log_p, beta, labels=None, ignore_index=-100):
    """beta = 0: KL(P || Q); beta = 1: KL(Q || P); else beta KL(P || M) + (1 - beta) KL(Q || M)."""
    p, q = log_p.exp(), log_q.exp()
    if beta == 0:
        rows = F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(-1)
    elif beta == 1:
        rows = F.kl_div(log_p, log_q, reduction="none", log_target=True).sum(-1)
    else:
        log_m = (beta * p + (1 - beta) * q).log()
        rows = beta * F.kl_div(log_m, log_p, reduction="none", log_target=True).sum(-1) + (1 - beta) * F.kl_div(
            log_m, log_q, reduction="none", log_target=True
        ).sum(-1)
    kept = torch.ones_like(rows, dtype=torch.bool) if labels is None else labels != ignore_index
    return torch.where(kept, rows, 0.0).sum() / kept.sum().clamp(min=1)


def test_exports():
    assert lt.LigerJSD is JSDFromModule and lt.LigerFusedLinearJSD is FromModule
    assert "LigerJSD" in lt.__all__ and "LigerFusedLinearJSD" in lt.__all__


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 1.0])
def test_jsd_module_matches_torch(beta):
    torch.manual_seed(0)
    student_logits = torch.randn(6, 40, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(6, 40, dtype=torch.float64).log_softmax(-1)
    labels = torch.tensor([1, -100, 3, 4, -100, 5])
    loss = LigerJSD(beta=beta)(student_logits.log_softmax(-1), teacher, labels)
    (grad,) = torch.autograd.grad(loss, student_logits)
    reference = torch_jsd(student_logits.log_softmax(-1), teacher, beta, labels)
    (ref_grad,) = torch.autograd.grad(reference, student_logits)
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(grad, ref_grad)
    functional = LF.liger_jsd(student_logits.log_softmax(-1), teacher, labels, beta=beta)
    torch.testing.assert_close(functional, reference)


def test_fused_linear_jsd_module_matches_torch():
    torch.manual_seed(1)
    student_hidden = torch.randn(7, 16, dtype=torch.float64, requires_grad=True)
    student_head = torch.nn.Linear(16, 50, bias=False).double()
    teacher_hidden = torch.randn(7, 24, dtype=torch.float64)
    teacher_head = torch.nn.Linear(24, 50, bias=False).double()
    labels = torch.tensor([1, 2, -100, 3, 4, -100, 5])
    loss_fn = LigerFusedLinearJSD(jsd_beta=0.3, temperature=2.0)
    loss = loss_fn(student_hidden, student_head.weight, teacher_hidden, teacher_head.weight, labels)
    loss.backward()
    hidden_ref = student_hidden.detach().requires_grad_()
    weight_ref = student_head.weight.detach().clone().requires_grad_()
    reference = torch_jsd(
        (hidden_ref @ weight_ref.T / 2.0).log_softmax(-1),
        (teacher_hidden @ teacher_head.weight.detach().T / 2.0).log_softmax(-1),
        0.3,
        labels,
    )
    reference.backward()
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(student_hidden.grad, hidden_ref.grad)
    torch.testing.assert_close(student_head.weight.grad, weight_ref.grad)
    assert teacher_head.weight.grad is None
    functional = LF.liger_fused_linear_jsd(
        student_hidden, student_head.weight, teacher_hidden, teacher_head.weight, labels, 0.3, -100, 2.0
    )
    torch.testing.assert_close(functional, reference)


def test_options_are_checked():
    with pytest.raises(ValueError, match="beta"):
        LigerJSD(beta=1.5)
    with pytest.raises(ValueError, match="jsd_beta"):
        LigerFusedLinearJSD(jsd_beta=-0.1)
    with pytest.raises(ValueError, match="temperature"):
        LigerFusedLinearJSD(temperature=0.0)
    assert "beta=0.25" in repr(LigerJSD(beta=0.25))
    assert "temperature=2.0" in repr(LigerFusedLinearJSD(temperature=2.0))
