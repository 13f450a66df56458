"""Float64 oracles of the op contracts, written from the math in the
docstrings of ``liger_kernel/ops/<op>.py``.

Each oracle takes float64 tensors (leaves with ``requires_grad`` where the
test wants gradients) and returns float64 outputs; backward comes from torch
autograd over the same formulas, which the contracts' backward formulas are
the derivatives of. Where a contract rounds an intermediate to the input
dtype (RMSNorm's "llama" casting mode) the oracle rounds it too, with an
identity gradient, so the comparison measures the backend's error only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def rounded(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` rounded to ``dtype`` and back, with the identity as gradient."""
    return x + (x.detach().to(dtype).to(x.dtype) - x.detach())


def rms_norm(
    x: Tensor,
    w: Tensor | None,
    eps: float,
    offset: float = 0.0,
    casting_mode: str = "llama",
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """y = (x * rstd) * (offset + w), rstd = 1 / sqrt(mean(x**2) + eps); without
    ``w`` the normalized x itself. ``dtype`` is the input dtype the "llama"
    mode rounds the normalized x to before the weight."""
    rstd = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    normed = x * rstd
    if w is None:
        return normed
    if casting_mode == "llama":
        normed = rounded(normed, dtype)
    return normed * (offset + w)


def fused_add_rms_norm(
    x: Tensor,
    r: Tensor,
    w: Tensor,
    eps: float,
    offset: float = 0.0,
    casting_mode: str = "llama",
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """(rms_norm(x + r), x + r); the sum is rounded to the input dtype, as the
    backend returns it in that dtype and normalizes what it returns."""
    s = rounded(x + r, dtype)
    return rms_norm(s, w, eps, offset, casting_mode, dtype), s


def layer_norm(x: Tensor, w: Tensor, b: Tensor | None, eps: float) -> Tensor:
    """y = (x - mean) * rstd * w + b over the last dimension (biased variance)."""
    mean = x.mean(dim=-1, keepdim=True)
    centered = x - mean
    rstd = torch.rsqrt(centered.pow(2).mean(dim=-1, keepdim=True) + eps)
    y = centered * rstd * w
    return y if b is None else y + b


def rotate_half(x: Tensor) -> Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def rope(
    q: Tensor,
    k: Tensor,
    cos: Tensor,
    sin: Tensor,
    position_ids: Tensor | None = None,
    unsqueeze_dim: int = 1,
    rotary_dim: int | None = None,
) -> tuple[Tensor, Tensor]:
    """q' = q * cos + rotate_half(q) * sin, likewise k'. 2-D cos/sin are tables
    indexed by position_ids (or the first seq positions); 3-D ones are used as
    given, position_ids ignored. Partial rotary: the first ``rotary_dim``
    (default: cos's width) entries of each head rotate, the rest pass through;
    cos/sin half that wide stand for their halves repeated."""
    r = cos.shape[-1] if rotary_dim is None else rotary_dim
    if r < q.shape[-1]:
        q_rot, k_rot = rope(q[..., :r], k[..., :r], cos, sin, position_ids, unsqueeze_dim, r)
        return torch.cat((q_rot, q[..., r:]), dim=-1), torch.cat((k_rot, k[..., r:]), dim=-1)
    if cos.shape[-1] != r:
        cos, sin = torch.cat((cos, cos), dim=-1), torch.cat((sin, sin), dim=-1)
    seq = q.shape[2 if unsqueeze_dim == 1 else 1]
    if cos.dim() == 2:
        if position_ids is None:
            cos, sin = cos[:seq].unsqueeze(0), sin[:seq].unsqueeze(0)
        else:
            cos, sin = cos[position_ids], sin[position_ids]
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def swiglu(a: Tensor, b: Tensor, gate_multiplier: float = 1.0, down_multiplier: float = 1.0) -> Tensor:
    """silu(g * a) * b * d with silu(u) = u * sigmoid(u) (g, d: Falcon-H1's multipliers)."""
    u = a * gate_multiplier
    return u * torch.sigmoid(u) * b * down_multiplier


def fused_moe(x: Tensor, gate_up_proj: Tensor, down_proj: Tensor, top_k_index: Tensor, top_k_weights: Tensor) -> Tensor:
    """sum_k w[t, k] * down[e] @ (silu(g) * u), [g; u] = gate_up[e] @ x[t], e = top_k_index[t, k]."""
    out = torch.zeros_like(x)
    for expert in range(down_proj.shape[0]):
        tokens, slots = (top_k_index == expert).nonzero(as_tuple=True)
        if tokens.numel():
            g, u = (x[tokens] @ gate_up_proj[expert].T).chunk(2, dim=-1)
            y = swiglu(g, u) @ down_proj[expert].T
            out = out.index_add(0, tokens, y * top_k_weights[tokens, slots, None])
    return out


def gelu_tanh(a: Tensor) -> Tensor:
    """0.5 * a * (1 + tanh(sqrt(2/pi) * (a + 0.044715 * a**3)))."""
    return 0.5 * a * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (a + 0.044715 * a.pow(3))))


def geglu(a: Tensor, b: Tensor) -> Tensor:
    return gelu_tanh(a) * b


def relu_squared(x: Tensor) -> Tensor:
    """relu(x) ** 2; its autograd slope is 2 * relu(x), 0 at x = 0."""
    return torch.relu(x).square()


def clamped_swiglu(x: Tensor, alpha: float, limit: float) -> Tensor:
    """(clamp(u, -limit, limit) + 1) * gc * sigmoid(alpha * gc), gc = min(g, limit), of
    the interleaved x = [g0, u0, g1, u1, ...]; the clamps' gradients are torch's."""
    g, u = x[..., 0::2], x[..., 1::2]
    gc = g.clamp(max=limit)
    return (u.clamp(-limit, limit) + 1) * gc * torch.sigmoid(alpha * gc)


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    lse_square_scale: float = 0.0,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    softcap: float | None = None,
    return_z_loss: bool = False,
    return_token_accuracy: bool = False,
    return_predicted_tokens: bool = False,
    token_scaling: bool = False,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """(loss, z_loss, token_accuracy, predicted_tokens) as in
    :mod:`liger_kernel.ops.cross_entropy`; ``token_scaling`` multiplies each
    row's loss by the detached probability of its target (FLCE's
    use_token_scaling)."""
    vocab = logits.shape[-1]
    x = logits if softcap is None else softcap * torch.tanh(logits / softcap)
    lse = torch.logsumexp(x, dim=-1)
    neg_logp = lse.unsqueeze(-1) - x
    w = torch.ones(vocab, dtype=x.dtype, device=x.device) if weight is None else weight.to(x.dtype)
    kept = target != ignore_index
    safe_target = torch.where(kept, target, torch.zeros_like(target)).long()
    w_target = w[safe_target] * kept
    e = label_smoothing
    ce = (1.0 - e) * w_target * neg_logp.gather(-1, safe_target.unsqueeze(-1)).squeeze(-1)
    ce = ce + (e / vocab) * (neg_logp * w).sum(dim=-1) * kept
    z = lse_square_scale * lse.pow(2) * kept
    if token_scaling:
        prob = torch.softmax(x.detach(), dim=-1).gather(-1, safe_target.unsqueeze(-1)).squeeze(-1)
        ce, z = ce * prob, z * prob
    kept_rows = kept.sum()
    if reduction == "none":
        loss, z_loss = ce + z, z
    elif reduction == "sum":
        loss, z_loss = ce.sum() + z.sum(), z.sum()
    else:
        if kept_rows == 0:
            zero = (ce.sum() + z.sum()) * 0.0
            loss, z_loss = zero, zero.detach()
        else:
            z_loss = z.sum() / kept_rows
            loss = ce.sum() / w_target.sum() + z_loss
    predicted = torch.where(kept, x.detach().argmax(dim=-1), torch.full_like(target, -1).long())
    accuracy = (predicted == target).logical_and(kept).sum() / kept_rows if kept_rows > 0 else x.new_zeros(())
    return (
        loss,
        z_loss.detach() if return_z_loss else None,
        accuracy.to(x.dtype) if return_token_accuracy else None,
        predicted if return_predicted_tokens else None,
    )


def fused_linear_cross_entropy(
    x: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None = None,
    ce_weight: Tensor | None = None,
    ignore_index: int = -100,
    lse_square_scale: float = 0.0,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    softcap: float | None = None,
    return_z_loss: bool = False,
    accum_dtype: torch.dtype | None = None,
    use_token_scaling: bool = False,
    return_token_accuracy: bool = False,
    return_predicted_tokens: bool = False,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """cross_entropy(x @ weight.T + bias, target, ce_weight, ...);
    accum_dtype changes only how a backend accumulates, not the result."""
    logits = x @ weight.T
    if bias is not None:
        logits = logits + bias
    return cross_entropy(
        logits,
        target,
        ce_weight,
        ignore_index,
        lse_square_scale,
        label_smoothing,
        reduction,
        softcap,
        return_z_loss,
        return_token_accuracy,
        return_predicted_tokens,
        token_scaling=use_token_scaling,
    )


def selective_log_softmax(logits: Tensor, ids: Tensor, temperature: float, mask: Tensor | None = None) -> Tensor:
    """log softmax(logits[:, t] / temperature) at the last L columns of ``ids``, L = positions - 1;
    0 where the mask's last L columns are 0."""
    length = logits.shape[1] - 1
    ids = ids[:, ids.shape[1] - length :]
    logp = torch.log_softmax(logits[:, :length] / temperature, dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    if mask is not None:
        logp = torch.where(mask[:, mask.shape[1] - length :].to(logp.device) != 0, logp, 0.0)
    return logp


def grpo_per_token(
    logits: Tensor,
    old_logp: Tensor | None,
    ref_logp: Tensor | None,
    ids: Tensor,
    advantages: Tensor,
    mask: Tensor | None,
    temperature: float,
    beta: float,
    eps_low: float,
    eps_high: float,
    loss_type: str = "grpo",
    importance_sampling_level: str = "token",
    sapo_temperature_pos: float = 1.0,
    sapo_temperature_neg: float = 1.05,
    vllm_is_ratio: Tensor | None = None,
    delta: float | None = None,
    use_bias_correction_kl: bool = False,
    phi_seq: Tensor | None = None,
) -> tuple[Tensor, Tensor | None, Tensor]:
    """(l m, k m or None, clipped m), each (B, L), of the GRPO contract; only the first
    carries a gradient (autograd through logp and the importance ratio)."""
    logp = selective_log_softmax(logits, ids, temperature)
    m = torch.ones_like(logp) if mask is None else mask.to(logp)
    keep = m != 0
    # a masked token's old, ref and ratio values are never used
    old = logp.detach() if old_logp is None else torch.where(keep, old_logp, logp.detach())
    log_ratio = logp - old
    if importance_sampling_level == "sequence":
        log_ratio = ((log_ratio * m).sum(-1) / m.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    coef = torch.exp(log_ratio)
    adv = advantages.unsqueeze(-1)
    none = torch.zeros_like(coef, dtype=torch.bool)
    if loss_type == "cispo":
        policy = -coef.clamp(max=eps_high).detach() * adv * logp
        clipped = (coef > eps_high) & (adv > 0)
    elif loss_type == "sapo":
        tau = torch.where(adv > 0, sapo_temperature_pos, sapo_temperature_neg).to(logp)
        policy = -adv * (4.0 / tau) * torch.sigmoid(tau * (coef - 1.0))
        clipped = none
    elif loss_type == "vespo":
        policy = -phi_seq.reshape(-1, 1) * adv * logp
        clipped = none
    else:
        capped = coef if delta is None else coef.clamp(max=delta)
        policy = -torch.minimum(capped * adv, coef.clamp(1 - eps_low, 1 + eps_high) * adv)
        clipped = ((coef < 1 - eps_low) & (adv < 0)) | ((coef > 1 + eps_high) & (adv > 0))
    if vllm_is_ratio is not None:
        policy = policy * (vllm_is_ratio.unsqueeze(-1) if vllm_is_ratio.dim() == 1 else vllm_is_ratio)
    per_token = policy.expand_as(logp)
    kl = None
    if beta != 0:
        gap = torch.where(keep, ref_logp, logp.detach()) - logp
        kl = torch.exp(gap) - gap - 1
        if use_bias_correction_kl:
            kl = kl * coef
        per_token = per_token + beta * kl
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    return (
        torch.where(keep, per_token * m, zero),
        None if kl is None else torch.where(keep, kl * m, zero).detach(),
        torch.where(keep, clipped.expand_as(logp) * m, zero).detach(),
    )


def grpo_reduced(
    per_token: Tensor,
    kl: Tensor | None,
    clipped: Tensor,
    mask: Tensor | None,
    loss_type: str,
    max_completion_length: int | None = None,
    num_items_in_batch: float | None = None,
) -> tuple[Tensor, Tensor | None, Tensor]:
    """(loss, mean kl or None, clipped fraction) of ``reduce=True`` (one process)."""
    m = torch.ones_like(per_token) if mask is None else mask.to(per_token)
    batch, length = per_token.shape
    counted = m.sum().clamp(min=1.0)
    if loss_type in ("grpo", "sapo"):
        loss = (per_token.sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = per_token.sum() / counted
    elif loss_type == "dr_grpo":
        loss = per_token.sum() / (batch * (max_completion_length or length))
    elif loss_type == "luspo":
        loss = (per_token * m.sum(-1, keepdim=True)).sum() / (batch * length)
    else:
        tokens = counted if num_items_in_batch is None else max(float(num_items_in_batch), 1.0)
        loss = per_token.sum() / tokens
    return loss, (None if kl is None else kl.sum() / counted), clipped.sum() / counted


def embedding(embeddings: Tensor, indices: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of the table by index; autograd sums each index's output gradients
    into its row, and gives the ``padding_idx`` row none (torch's nn.Embedding rule)."""
    return torch.nn.functional.embedding(indices, embeddings, padding_idx=padding_idx)


def modulated_rms_norm(
    x: Tensor,
    w: Tensor | None,
    scale: Tensor,
    shift: Tensor | None,
    eps: float,
    offset: float = 0.0,
    casting_mode: str = "llama",
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """(1 + scale[m]) * rms_norm(x) + shift[m], where row i of x (flattened over
    its leading dimensions) takes modulation row m = i // (N / M) of the M rows
    of scale and shift (their leading dimensions flattened)."""
    width = x.shape[-1]
    rows = x.reshape(-1, width)
    groups = scale.numel() // width
    r = rms_norm(rows, w, eps, offset, casting_mode, dtype).reshape(groups, -1, width)
    y = r * (1 + scale.reshape(groups, 1, width))
    if shift is not None:
        y = y + shift.reshape(groups, 1, width)
    return y.reshape(x.shape)


def vocab_parallel_cross_entropy(
    logits: Tensor,
    target: Tensor,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    formula: str = "pytorch",
) -> Tensor:
    """Per-row loss (seq, batch) of unsharded (seq, batch, V) logits: (1 - a) * nll
    + a * (lse - mean_j x_j), a = alpha ("pytorch") or alpha * V / (V - 1) ("megatron")."""
    vocab = logits.shape[-1]
    a = label_smoothing if formula == "pytorch" else label_smoothing * vocab / (vocab - 1)
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    loss = (1 - a) * nll - a * logp.mean(dim=-1)
    return torch.where(target == ignore_index, 0.0, loss)


def fused_linear_scaled_cross_entropy(
    x: Tensor,
    weight: Tensor,
    target: Tensor,
    temperature: float = 1.0,
    ignore_index: int = -100,
    return_entropy: bool = False,
    selected_token_ids: Tensor | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """(nll, entropy or None, selected log-probabilities or None) of z = x @ weight.T / T, 0 on ignored rows."""
    logp = torch.log_softmax(x @ weight.t() / temperature, dim=-1)
    kept = target != ignore_index
    nll = torch.where(kept, -logp.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1), 0.0)
    entropy = torch.where(kept, -(logp.exp() * logp).sum(dim=1), 0.0) if return_entropy else None
    selected = None
    if selected_token_ids is not None:
        selected = torch.where(kept.unsqueeze(1), logp[:, selected_token_ids], 0.0)
    return nll, entropy, selected
