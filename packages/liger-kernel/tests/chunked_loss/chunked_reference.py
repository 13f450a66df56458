"""Straightforward (whole-batch, unchunked) PyTorch versions of the chunked losses, as test oracles.

Each materializes the full logits and lets autograd differentiate; none shares
code with liger_kernel.chunked_loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def full_logits(x, w, b):
    logits = x @ w.t()
    return logits if b is None else logits + b


def sequence_logps(x, w, b, target, ignore_index, average):
    logp = F.log_softmax(full_logits(x, w, b), dim=-1)
    mask = target != ignore_index
    picked = torch.gather(logp, -1, torch.where(mask, target, 0).unsqueeze(-1)).squeeze(-1)
    total = (picked * mask).sum(-1)
    return (total / mask.sum(-1).clamp(min=1)) if average else total


def chosen_nll(x, w, b, target, ignore_index):
    """Mean token cross-entropy over the chosen (first) half of the batch."""
    half = x.shape[0] // 2
    logits = full_logits(x[:half], w, b)
    return F.cross_entropy(logits.flatten(0, 1), target[:half].flatten(), ignore_index=ignore_index)


def preference_outputs(x, w, b, target, ignore_index, average, ref=None):
    """(chosen_logps, rejected_logps, ref_chosen, ref_rejected, chosen_logits_mean, rejected_logits_mean)."""
    half = x.shape[0] // 2
    logps = sequence_logps(x, w, b, target, ignore_index, average)
    logits = full_logits(x, w, b)
    ref_c = ref_r = torch.zeros(half, dtype=logps.dtype)
    if ref is not None:
        with torch.no_grad():
            ref_logps = sequence_logps(*ref, target, ignore_index, average)
        ref_c, ref_r = ref_logps[:half], ref_logps[half:]
    return logps[:half], logps[half:], ref_c, ref_r, logits[:half].mean(), logits[half:].mean()


def dpo(
    x,
    w,
    b,
    target,
    *,
    beta,
    loss_type,
    ignore_index,
    ref=None,
    average=False,
    nll=False,
    smoothing=0.0,
    tau=0.05,
    alpha=1.0,
):
    c, r, rc, rr, cm, rm = preference_outputs(x, w, b, target, ignore_index, average, ref)
    cr, rr_ = c - rc, r - rr
    margin = beta * (cr - rr_)
    if loss_type in ("ipo", "sigmoid_norm"):
        counted = (target != ignore_index).sum(-1).clamp(min=1).to(c.dtype)
        half = counted.shape[0] // 2
        # per-token log-ratios: with average the log-probabilities already are per-token means
        per_c, per_r = (cr, rr_) if average else (cr / counted[:half], rr_ / counted[half:])
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(margin)
    elif loss_type == "hinge":
        losses = torch.clamp(1 - margin, min=0)
    elif loss_type == "ipo":
        losses = (per_c - per_r - 1 / (2 * beta)) ** 2
    elif loss_type == "sigmoid_norm":
        losses = torch.log1p(torch.exp(-beta * (per_c - per_r)))
    elif loss_type == "exo_pair":
        # KL between the Bernoulli (sigmoid(margin), 1 - sigmoid(margin)) and (1 - eps, eps)
        q = torch.sigmoid(margin)
        losses = q * torch.log(q / (1 - smoothing)) + (1 - q) * torch.log((1 - q) / smoothing)
    elif loss_type == "robust":
        losses = ((1 - smoothing) * torch.log1p(torch.exp(-margin)) - smoothing * torch.log1p(torch.exp(margin))) / (
            1 - 2 * smoothing
        )
    elif loss_type == "bco_pair":
        losses = torch.log1p(torch.exp(-beta * cr)) + torch.log1p(torch.exp(beta * rr_))
    elif loss_type == "apo_zero":
        losses = 1 - torch.sigmoid(beta * cr) + torch.sigmoid(beta * rr_)
    elif loss_type == "apo_down":
        losses = torch.sigmoid(beta * cr) + 1 - torch.sigmoid(beta * (cr - rr_))
    elif loss_type == "sppo_hard":
        losses = (cr - 0.5 / beta) ** 2 + (rr_ + 0.5 / beta) ** 2
    elif loss_type == "discopop":
        gate = 1 / (1 + torch.exp(-margin / tau))
        losses = (1 - gate) * torch.log1p(torch.exp(-margin)) + gate * torch.exp(-margin)
    elif loss_type == "sft":
        losses = torch.zeros_like(margin)
    else:  # nca_pair
        losses = -F.logsigmoid(beta * cr) - 0.5 * F.logsigmoid(-beta * cr) - 0.5 * F.logsigmoid(-beta * rr_)
    nll_loss = chosen_nll(x, w, b, target, ignore_index) if nll or loss_type == "sft" else torch.zeros(())
    return losses.mean() + alpha * nll_loss, (c, r, cm, rm, nll_loss, beta * cr, beta * rr_)


def orpo(x, w, b, target, *, beta, ignore_index):
    c, r, _, _, cm, rm = preference_outputs(x, w, b, target, ignore_index, True)
    # log odds(p) = log p - log(1 - p), with p the per-token-averaged probability
    log_odds = (c - torch.log(1 - torch.exp(c))) - (r - torch.log(1 - torch.exp(r)))
    ratio = F.logsigmoid(log_odds)
    nll_loss = chosen_nll(x, w, b, target, ignore_index)
    return nll_loss - beta * ratio.mean(), (c, r, cm, rm, nll_loss, beta * c, beta * r, ratio.mean(), log_odds.mean())


def cpo(x, w, b, target, *, beta, alpha, label_smoothing, loss_type, ignore_index, average=False):
    c, r, _, _, cm, rm = preference_outputs(x, w, b, target, ignore_index, average)
    z = beta * (c - r)
    if loss_type == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    else:
        losses = torch.clamp(1 - z, min=0)
    nll_loss = chosen_nll(x, w, b, target, ignore_index)
    return alpha * nll_loss + losses.mean(), (c, r, cm, rm, nll_loss, beta * c, beta * r)


def simpo(x, w, b, target, *, beta, alpha, gamma, label_smoothing, ignore_index):
    c, r, _, _, cm, rm = preference_outputs(x, w, b, target, ignore_index, True)
    z = beta * (c - r) - gamma
    losses = -(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    nll_loss = chosen_nll(x, w, b, target, ignore_index)
    return alpha * nll_loss + losses.mean(), (c, r, cm, rm, nll_loss, beta * c, beta * r)


def kto(x, w, b, target, labels, *, beta, ignore_index, ref=None, kl=None, average=False):
    logps = sequence_logps(x, w, b, target, ignore_index, average)
    ratio = logps
    if ref is not None:
        with torch.no_grad():
            ref_logps = sequence_logps(*ref, target, ignore_index, average)
        ratio = logps - ref_logps
    kl_value = 0.0 if kl is None else kl
    desirable = 1 - torch.sigmoid(beta * (ratio - kl_value))
    undesirable = 1 - torch.sigmoid(beta * (kl_value - ratio))
    loss = torch.where(labels, desirable, undesirable).mean()
    logits_per_row = full_logits(x, w, b).sum(dim=(1, 2))
    rewards = beta * ratio
    sums = tuple(
        v[labels].sum() if chosen else v[~labels].sum()
        for v, chosen in (
            (logps, True),
            (logps, False),
            (logits_per_row, True),
            (logits_per_row, False),
            (rewards, True),
            (rewards, False),
        )
    )
    return loss, sums


def grpo(
    x,
    w,
    b,
    ids,
    mask,
    adv,
    *,
    beta,
    eps_low,
    eps_high,
    loss_type,
    temperature=1.0,
    old=None,
    ref_logps=None,
    ref=None,
    level="token",
    max_len=None,
    delta=None,
    bias_kl=False,
    is_ratio=None,
    vespo=(2.0, 3.0, 3.0, 2.0),
):
    def per_token_logps(xx, ww, bb):
        logp = F.log_softmax(full_logits(xx, ww, bb) / temperature, dim=-1)
        return torch.gather(logp, -1, ids.unsqueeze(-1)).squeeze(-1)

    logps = per_token_logps(x, w, b)
    old = logps.detach() if old is None else old
    if level == "token":
        coef = torch.exp(logps - old)
    else:
        coef = torch.exp(((logps - old) * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1))
    a = adv[:, None]
    if loss_type == "cispo":
        per_token = -torch.clamp(coef, max=eps_high).detach() * a * logps
        clipped = (coef > eps_high) & (a > 0)
    elif loss_type == "sapo":
        tau = torch.where(a > 0, 1.0, 1.05)
        per_token = -a * 4 / tau * torch.sigmoid(tau * (coef - 1))
        clipped = torch.zeros_like(coef, dtype=torch.bool)
    elif loss_type == "vespo":
        phi = gamma_weights(adv, logps.detach() - old, mask, is_ratio, *vespo)
        per_token = -phi * a * logps
        clipped = torch.zeros_like(coef, dtype=torch.bool)
    else:
        capped = coef if delta is None else torch.clamp(coef, max=delta)
        per_token = torch.maximum(-capped * a, -torch.clamp(coef, 1 - eps_low, 1 + eps_high) * a)
        clipped = ((coef < 1 - eps_low) & (a < 0)) | ((coef > 1 + eps_high) & (a > 0))
    per_token = per_token.expand_as(mask)
    if is_ratio is not None and loss_type != "vespo":
        per_token = per_token * is_ratio.reshape(mask.shape[0], -1)
    metrics = []
    if beta != 0:
        if ref_logps is None:
            with torch.no_grad():
                ref_logps = per_token_logps(*ref) if ref is not None else logps.detach()
        kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1
        per_token = per_token + beta * (kl * coef if bias_kl else kl)
        metrics.append((kl * mask).sum() / mask.sum())
    if loss_type in ("grpo", "sapo"):
        loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
    elif loss_type == "dr_grpo":
        loss = (per_token * mask).sum() / (mask.shape[0] * max_len)
    elif loss_type == "luspo":
        loss = (per_token * mask).sum(1).mean()
    else:
        loss = (per_token * mask).sum() / mask.sum()
    metrics.append((clipped.expand_as(mask) * mask).sum() / mask.sum())
    return loss, metrics


def gamma_weights(adv, log_ratio, mask, is_ratio, k_pos, lambda_pos, k_neg, lambda_neg):
    """VESPO's phi(w) = e^lambda w^k e^(-lambda w) per row, w the clamped sequence importance weight."""
    log_w = (torch.clamp(log_ratio, -20, 20) * mask).sum(1, keepdim=True)
    if is_ratio is not None:
        ratio = is_ratio.reshape(mask.shape[0], -1)
        log_ratio_is = torch.clamp(torch.log(ratio), math.log(1e-8), 20)
        log_w = log_w + (log_ratio_is * (mask if ratio.shape[1] > 1 else 1)).sum(1, keepdim=True)
    w = torch.exp(torch.clamp(log_w, math.log(1e-8), 20))
    k = torch.where(adv[:, None] >= 0, k_pos, k_neg)
    lam = torch.where(adv[:, None] >= 0, lambda_pos, lambda_neg)
    return math.e**lam * w**k * torch.exp(-lam * w)


def jsd_rows(s, t, beta):
    """GKD's generalized JSD (TRL's and liger-kernel 0.8.5's convention): the mixture weighs the teacher by beta;
    beta = 0 is KL(teacher || student) and beta = 1 is KL(student || teacher)."""
    p_s, p_t = F.softmax(s, -1), F.softmax(t, -1)

    def kl(p, q):
        return (p * (p.log() - q.log())).sum(-1)

    if beta == 0:
        return kl(p_t, p_s)
    if beta == 1:
        return kl(p_s, p_t)
    m = (1 - beta) * p_s + beta * p_t
    return beta * kl(p_t, m) + (1 - beta) * kl(p_s, m)


def cosine_rows(s, t, beta):
    return beta * (1 - (s * t).sum(-1) / (s.norm(dim=-1) * t.norm(dim=-1)))


def distillation(xs, ws, bs, xt, wt, bt, labels, *, rows_fn, w_hard, w_soft, ignore_index, temperature):
    s = full_logits(xs, ws, bs)
    with torch.no_grad():
        t = full_logits(xt, wt, bt)
    keep = labels != ignore_index
    hard = F.cross_entropy(s, labels, ignore_index=ignore_index)
    soft = rows_fn(s[keep] / temperature, t[keep] / temperature).mean()
    return w_hard * hard + w_soft * soft, soft, hard
