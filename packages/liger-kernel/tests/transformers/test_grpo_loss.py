"""triton_grpo_loss (liger_kernel.transformers.grpo_loss) and the GRPO helpers of
liger_kernel.chunked_loss.grpo_loss, against float64 references written from their
docstrings. The op's own contract is the conformance suite's (test_grpo_loss.py)."""

from __future__ import annotations

import math

import pytest
import torch

from liger_kernel.chunked_loss.grpo_loss import clip_coef_fn, k3_loss_fn, sapo_loss_fn
from liger_kernel.ops import GrpoLossFunction
from liger_kernel.transformers.grpo_loss import triton_grpo_loss

B, L, V = 3, 6, 29


def batch(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(B, L + 1, V, generator=g, dtype=torch.float64) * 2).to(dtype)
    ids = torch.randint(0, V, (B, L), generator=g)
    mask = torch.ones(B, L, dtype=torch.int64)
    mask[0, 4:] = 0
    logp = torch.log_softmax(logits.double()[:, :-1] / 0.9, -1).gather(-1, ids[..., None]).squeeze(-1)
    old = (logp + 0.2 * torch.randn(B, L, generator=g, dtype=torch.float64)).to(dtype)
    ref = (logp + 0.3 * torch.randn(B, L, generator=g, dtype=torch.float64)).to(dtype)
    adv = torch.randn(B, generator=g, dtype=torch.float64).to(dtype)
    return logits, old, ref, ids, adv, mask


def test_per_token_outputs_are_the_ops():
    logits, old, ref, ids, adv, mask = batch()
    got = triton_grpo_loss(logits, old, ref, ids, adv, mask)
    want = GrpoLossFunction.apply(logits, old, ref, ids, adv, mask, 0.9, 0.04, 0.2, 0.4, True, "dapo", None, False)
    assert len(got) == 3
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_reduced_returns_loss_and_metrics():
    logits, old, ref, ids, adv, mask = batch()
    loss, metrics = triton_grpo_loss(logits, old, ref, ids, adv, mask, reduce=True, loss_type="bnpo")
    per_token, kl, clipped = triton_grpo_loss(logits, old, ref, ids, adv, mask, loss_type="bnpo")
    counted = mask.sum()
    torch.testing.assert_close(loss, per_token.sum() / counted)
    assert len(metrics) == 2
    torch.testing.assert_close(metrics[0], kl.sum() / counted)
    torch.testing.assert_close(metrics[1], clipped.sum() / counted)
    loss, metrics = triton_grpo_loss(logits, old, ref, ids, adv, mask, beta=0.0, reduce=True)
    assert len(metrics) == 1


def vespo_reference(logits, old, ids, adv, mask, ratio, k_pos=2.0, lam_pos=3.0, k_neg=3.0, lam_neg=2.0):
    """-phi A logp per token (times the mask), phi = exp(lam) w^k exp(-lam w) of the row's
    importance weight w = exp(sum of kept log-ratios + sum log vllm ratio), detached."""
    logp = torch.log_softmax(logits[:, :-1] / 0.9, -1).gather(-1, ids[..., None]).squeeze(-1)
    m = mask.double()
    log_w = ((logp.detach() - old) * m).sum(-1) + torch.log(ratio).sum(-1)
    k = torch.where(adv >= 0, k_pos, k_neg)
    lam = torch.where(adv >= 0, lam_pos, lam_neg)
    phi = torch.exp(lam + k * log_w - lam * torch.exp(log_w))
    return -phi[:, None] * adv[:, None] * logp * m


@pytest.mark.parametrize("ratio_shape", ["none", "B", "BL"])
def test_vespo_folds_the_vllm_ratio_into_phi(ratio_shape):
    logits, old, ref, ids, adv, mask = batch(1)
    g = torch.Generator().manual_seed(5)
    ratio = {
        "none": None,
        "B": 0.9 + 0.2 * torch.rand(B, generator=g, dtype=torch.float64),
        "BL": 0.9 + 0.2 * torch.rand(B, L, generator=g, dtype=torch.float64),
    }[ratio_shape]
    x = logits.clone().requires_grad_()
    loss, _, _ = triton_grpo_loss(x, old, ref, ids, adv, mask, beta=0.0, loss_type="vespo", vllm_is_ratio=ratio)
    y = logits.clone().requires_grad_()
    used = torch.ones(B, 1, dtype=torch.float64) if ratio is None else (ratio if ratio.dim() == 2 else ratio[:, None])
    # a per-token ratio counts on the kept tokens only
    counted = torch.where(mask == 0, 1.0, used) if used.shape[-1] == L else used
    want = vespo_reference(y, old, ids, adv, mask, counted)
    torch.testing.assert_close(loss, want)
    loss.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(x.grad, y.grad)


def test_vespo_takes_token_level_only():
    logits, old, ref, ids, adv, mask = batch()
    with pytest.raises(ValueError, match="importance_sampling_level"):
        triton_grpo_loss(logits, old, ref, ids, adv, mask, loss_type="vespo", importance_sampling_level="sequence")


def test_k3_loss_fn():
    log_p = torch.tensor([-1.0, -2.0, -0.5, -3.0], dtype=torch.float64)
    log_q = torch.tensor([-1.0, -1.5, -2.5, -3.0 + 1e-4], dtype=torch.float64)
    gap = log_p - log_q
    torch.testing.assert_close(k3_loss_fn(log_p, log_q), torch.exp(gap) - gap - 1)
    # a small gap in float32 (exp(gap) - 1 alone would lose a fifth of the value to rounding)
    small = k3_loss_fn(torch.tensor([1e-3], dtype=torch.float32), torch.zeros(1))
    assert math.isclose(small.item(), math.expm1(1e-3) - 1e-3, rel_tol=1e-3)


def test_sapo_loss_fn():
    ratio = torch.tensor([0.5, 1.0, 1.7], dtype=torch.float64)
    torch.testing.assert_close(sapo_loss_fn(ratio, 2.0), torch.sigmoid(2.0 * (ratio - 1)) * 2.0)
    with pytest.raises(ValueError, match="temperature"):
        sapo_loss_fn(ratio, 0.0)


def test_clip_coef_fn():
    coef = torch.tensor([0.5, 0.9, 1.1, 1.5, 6.0], requires_grad=True)
    clipped, low, high = clip_coef_fn(coef, 0.2, 0.3, "grpo")
    torch.testing.assert_close(clipped, torch.tensor([0.8, 0.9, 1.1, 1.3, 1.3]))
    assert low.tolist() == [True, False, False, False, False] and high.tolist() == [False, False, False, True, True]
    clipped, low, high = clip_coef_fn(coef, 0.2, 5.0, "cispo")
    assert not clipped.requires_grad and clipped.tolist()[-1] == 5.0 and not low.any()
    assert high.tolist() == [False, False, False, False, True]
    for loss_type in ("sapo", "vespo"):
        clipped, low, high = clip_coef_fn(coef, 0.2, 0.3, loss_type)
        assert clipped is None and not low.any() and not high.any()
