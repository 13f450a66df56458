"""The pure-PyTorch backend, through the public ``liger_kernel.ops`` Functions on CPU.

Every op is checked, forward and gradients, against the contract's formula
written here as plain float64 torch expressions differentiated by autograd.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from liger_kernel.backends.torch import cross_entropy as ce_backend
from liger_kernel.ops import (
    LigerCrossEntropyFunction,
    LigerFusedAddRMSNormFunction,
    LigerFusedLinearCrossEntropyFunction,
    LigerGELUMulFunction,
    LigerLayerNormFunction,
    LigerRMSNormFunction,
    LigerRopeFunction,
    LigerSiLUMulFunction,
)

TOLERANCE = {torch.float64: 1e-10, torch.float32: 2e-5, torch.bfloat16: 3e-2, torch.float16: 4e-3}


def leaf(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    return t.detach().to(dtype or t.dtype).requires_grad_(True)


def non_contiguous(*shape: int, seed: int) -> torch.Tensor:
    """A (shape) float64 tensor whose layout is not contiguous (a transposed view)."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(shape[1], shape[0], *shape[2:], generator=gen, dtype=torch.float64)
    out = base.transpose(0, 1)
    assert not out.is_contiguous()
    return out


def close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> None:
    tol = TOLERANCE[dtype] * scale
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol, atol=tol)


def grads_of(outputs, upstream, inputs):
    """Gradients of sum(out * g) with respect to those ``inputs`` that require grad."""
    total = sum((o.double() * g).sum() for o, g in zip(outputs, upstream))
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    found = torch.autograd.grad(total, wanted)
    return dict(zip([id(t) for t in wanted], found))


# --------------------------------------------------------------------------- RMSNorm


def rms_norm_reference(x, w, eps, offset, mode, x_dtype):
    rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    normed = x * rstd
    if mode == "llama" and x_dtype != torch.float64:
        # "llama" rounds n to the input dtype before the weight multiplies it.
        normed = normed + (normed.detach().to(x_dtype).double() - normed.detach())
    return normed if w is None else normed * (offset + w)


@pytest.mark.parametrize("mode", ["llama", "gemma", "none"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize(("with_weight", "offset"), [(True, 0.0), (True, 1.0), (False, 0.0)])
def test_rms_norm(mode, dtype, with_weight, offset):
    x64 = non_contiguous(2, 3, 24, seed=0)
    w64 = torch.randn(24, dtype=torch.float64) if with_weight else None
    x, w = leaf(x64, dtype), (leaf(w64, dtype) if with_weight else None)
    y = LigerRMSNormFunction.apply(x, w, 1e-6, offset, mode)
    assert y.dtype == dtype and y.shape == x.shape

    xr, wr = leaf(x.detach().double()), (leaf(w.detach().double()) if with_weight else None)
    yr = rms_norm_reference(xr, wr, 1e-6, offset, mode, dtype)
    scale = 4.0 if mode == "none" else 1.0  # "none" keeps everything in bf16
    close(y, yr, dtype, scale)

    g = torch.randn_like(yr)
    ours, ref = grads_of([y], [g], [x, w]), grads_of([yr], [g], [xr, wr])
    close(ours[id(x)], ref[id(xr)], dtype, scale)
    assert ours[id(x)].dtype == dtype
    if with_weight:
        close(ours[id(w)], ref[id(wr)], dtype, scale * 2)
        assert ours[id(w)].dtype == dtype


@pytest.mark.parametrize("which", ["x", "w"])
def test_rms_norm_gradient_for_one_input_only(which):
    x64, w64 = torch.randn(5, 8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    x = leaf(x64) if which == "x" else x64
    w = leaf(w64) if which == "w" else w64
    y = LigerRMSNormFunction.apply(x, w, 1e-6)
    xr, wr = leaf(x64), leaf(w64)
    yr = rms_norm_reference(xr, wr, 1e-6, 0.0, "llama", torch.float64)
    g = torch.randn_like(yr)
    (ours,) = torch.autograd.grad((y * g).sum(), [x if which == "x" else w])
    (ref,) = torch.autograd.grad((yr * g).sum(), [xr if which == "x" else wr])
    close(ours, ref, torch.float64)


def test_rms_norm_in_place_never_corrupts_caller_tensors():
    x = leaf(torch.randn(4, 16))
    w = leaf(torch.randn(16))
    x_before, w_before = x.detach().clone(), w.detach().clone()
    y = LigerRMSNormFunction.apply(x, w, 1e-6, 0.0, "llama", True)
    dy = torch.randn_like(y)
    dy_before = dy.clone()
    torch.autograd.grad(y, [x, w], dy)
    assert torch.equal(dy, dy_before)
    assert torch.equal(x.detach(), x_before) and torch.equal(w.detach(), w_before)
    # The same upstream gradient reaching the norm twice (y used by two consumers) stays correct.
    x2 = leaf(x.detach())
    y2 = LigerRMSNormFunction.apply(x2, w.detach(), 1e-6, 0.0, "llama", True)
    other = y2 * 1.0
    (dx2,) = torch.autograd.grad((y2 + other).sum(), [x2])
    (dx_once,) = torch.autograd.grad(LigerRMSNormFunction.apply(x2, w.detach(), 1e-6).sum(), [x2])
    torch.testing.assert_close(dx2, 2 * dx_once)


# --------------------------------------------------------------------------- fused add + RMSNorm


@pytest.mark.parametrize("mode", ["llama", "gemma"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_fused_add_rms_norm(mode, dtype):
    x64, r64 = non_contiguous(3, 2, 16, seed=1), torch.randn(3, 2, 16, dtype=torch.float64)
    w64 = torch.randn(16, dtype=torch.float64)
    x, r, w = leaf(x64, dtype), leaf(r64, dtype), leaf(w64, dtype)
    y, s = LigerFusedAddRMSNormFunction.apply(x, r, w, 1e-6, 1.0, mode)
    assert y.dtype == s.dtype == dtype

    xr, rr, wr = (leaf(t.detach().double()) for t in (x, r, w))
    sr = xr + rr
    if dtype != torch.float64:  # S is formed in the input dtype
        sr = sr + (sr.detach().to(dtype).double() - sr.detach())
    yr = rms_norm_reference(sr, wr, 1e-6, 1.0, mode, dtype)
    close(y, yr, dtype)
    close(s, sr, dtype)

    gy, gs = torch.randn_like(yr), torch.randn_like(sr)
    ours, ref = grads_of([y, s], [gy, gs], [x, r, w]), grads_of([yr, sr], [gy, gs], [xr, rr, wr])
    for mine, theirs in ((x, xr), (r, rr)):
        close(ours[id(mine)], ref[id(theirs)], dtype)
    close(ours[id(w)], ref[id(wr)], dtype, 2.0)


def test_fused_add_rms_norm_gives_x_and_r_separate_gradients():
    x, r, w = leaf(torch.randn(4, 8)), leaf(torch.randn(4, 8)), torch.ones(8)
    y, s = LigerFusedAddRMSNormFunction.apply(x, r, w, 1e-6)
    (y.sum() + s.sum()).backward()
    torch.testing.assert_close(x.grad, r.grad)
    assert x.grad.data_ptr() != r.grad.data_ptr()


# --------------------------------------------------------------------------- LayerNorm


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm(dtype, with_bias):
    x64 = non_contiguous(2, 3, 20, seed=2) * 3 + 1
    w64, b64 = torch.randn(20, dtype=torch.float64), torch.randn(20, dtype=torch.float64)
    x, w, b = leaf(x64, dtype), leaf(w64, dtype), (leaf(b64, dtype) if with_bias else None)
    y = LigerLayerNormFunction.apply(x, w, b, 1e-5)
    assert y.dtype == dtype

    xr, wr = leaf(x.detach().double()), leaf(w.detach().double())
    br = leaf(b.detach().double()) if with_bias else None
    yr = F.layer_norm(xr, (20,), wr, br, 1e-5)
    close(y, yr, dtype)
    g = torch.randn_like(yr)
    ours, ref = grads_of([y], [g], [x, w, b]), grads_of([yr], [g], [xr, wr, br])
    close(ours[id(x)], ref[id(xr)], dtype)
    close(ours[id(w)], ref[id(wr)], dtype, 2.0)
    if with_bias:
        close(ours[id(b)], ref[id(br)], dtype, 2.0)


# --------------------------------------------------------------------------- RoPE


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_tables(positions: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(positions, dtype=torch.float64), inv_freq)
    # Distinct halves, so a backward that assumed cat(freqs, freqs) would be caught.
    angles = torch.cat((angles, angles * 0.5 + 0.3), dim=-1)
    return angles.cos(), angles.sin()


@pytest.mark.parametrize("unsqueeze_dim", [1, 2])
@pytest.mark.parametrize("table", ["3d", "3d_batch1", "2d_positions", "2d_prefix"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_rope(unsqueeze_dim, table, dtype):
    batch, seq, q_heads, k_heads, head_dim = 2, 5, 4, 2, 8
    cos_all, sin_all = rope_tables(12, head_dim)
    position_ids = torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])
    if table == "2d_positions":
        cos, sin, ids = cos_all, sin_all, position_ids
        cos_r, sin_r = cos_all[position_ids], sin_all[position_ids]
    elif table == "2d_prefix":
        cos, sin, ids = cos_all, sin_all, None
        cos_r, sin_r = cos_all[:seq].unsqueeze(0), sin_all[:seq].unsqueeze(0)
    else:
        cos, sin = cos_all[position_ids], sin_all[position_ids]
        if table == "3d_batch1":
            cos, sin = cos[:1], sin[:1]
        # position_ids is ignored with 3-D tables: pass a wrong one to prove it.
        cos_r, sin_r, ids = cos, sin, torch.zeros_like(position_ids)

    def shape(heads):
        return (batch, heads, seq, head_dim) if unsqueeze_dim == 1 else (batch, seq, heads, head_dim)

    q64, k64 = torch.randn(*shape(q_heads), dtype=torch.float64), torch.randn(*shape(k_heads), dtype=torch.float64)
    q, k = leaf(q64, dtype), leaf(k64, dtype)
    q_out, k_out = LigerRopeFunction.apply(q, k, cos.to(dtype), sin.to(dtype), ids, unsqueeze_dim)
    assert q_out.dtype == k_out.dtype == dtype and q_out.shape == q.shape and k_out.shape == k.shape

    qr, kr = leaf(q.detach().double()), leaf(k.detach().double())
    c = cos_r.to(dtype).double().unsqueeze(unsqueeze_dim)
    s = sin_r.to(dtype).double().unsqueeze(unsqueeze_dim)
    q_ref, k_ref = qr * c + rotate_half(qr) * s, kr * c + rotate_half(kr) * s
    close(q_out, q_ref, dtype)
    close(k_out, k_ref, dtype)
    gq, gk = torch.randn_like(q_ref), torch.randn_like(k_ref)
    ours, ref = grads_of([q_out, k_out], [gq, gk], [q, k]), grads_of([q_ref, k_ref], [gq, gk], [qr, kr])
    close(ours[id(q)], ref[id(qr)], dtype)
    close(ours[id(k)], ref[id(kr)], dtype)


def test_rope_gradient_for_q_only():
    cos, sin = rope_tables(4, 8)
    q, k = leaf(torch.randn(1, 2, 4, 8, dtype=torch.float64)), torch.randn(1, 2, 4, 8, dtype=torch.float64)
    q_out, k_out = LigerRopeFunction.apply(q, k, cos.unsqueeze(0), sin.unsqueeze(0))
    assert not k_out.requires_grad or k_out.grad_fn is not None
    (dq,) = torch.autograd.grad(q_out.sum() + k_out.sum(), [q])
    qr = leaf(q.detach())
    c, s = cos.unsqueeze(0).unsqueeze(1), sin.unsqueeze(0).unsqueeze(1)
    (dq_ref,) = torch.autograd.grad((qr * c + rotate_half(qr) * s).sum(), [qr])
    close(dq, dq_ref, torch.float64)


# --------------------------------------------------------------------------- SwiGLU / GEGLU


@pytest.mark.parametrize(
    ("function", "reference"),
    [
        (LigerSiLUMulFunction, lambda a, b: F.silu(a) * b),
        (LigerGELUMulFunction, lambda a, b: F.gelu(a, approximate="tanh") * b),
    ],
    ids=["swiglu", "geglu"],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_gated_activations(function, reference, dtype):
    a64, b64 = non_contiguous(3, 2, 10, seed=3) * 3, torch.randn(3, 2, 10, dtype=torch.float64)
    a, b = leaf(a64, dtype), leaf(b64, dtype)
    c = function.apply(a, b)
    assert c.dtype == dtype and c.shape == a.shape
    ar, br = leaf(a.detach().double()), leaf(b.detach().double())
    cr = reference(ar, br)
    close(c, cr, dtype)
    g = torch.randn_like(cr)
    ours, ref = grads_of([c], [g], [a, b]), grads_of([cr], [g], [ar, br])
    close(ours[id(a)], ref[id(ar)], dtype)
    close(ours[id(b)], ref[id(br)], dtype)
    # Only one input needing a gradient is served too.
    (db_only,) = torch.autograd.grad((function.apply(a.detach(), b) * g).sum(), [b])
    close(db_only, ref[id(br)], dtype)


# --------------------------------------------------------------------------- cross-entropy


def ce_reference(x, target, weight, ignore_index, z_scale, smoothing, reduction, softcap):
    """The contract in float64: torch's cross-entropy on the capped logits plus the z-loss."""
    if softcap is not None:
        x = softcap * torch.tanh(x / softcap)
    ce = F.cross_entropy(
        x, target, weight=weight, ignore_index=ignore_index, label_smoothing=smoothing, reduction=reduction
    )
    keep = target != ignore_index
    z_rows = torch.where(keep, z_scale * torch.logsumexp(x, dim=-1) ** 2, 0.0)
    if reduction == "mean":
        z = z_rows.sum() / keep.sum().clamp(min=1)
        if keep.sum() == 0:
            ce = ce.nan_to_num(0.0) * 0
    elif reduction == "sum":
        z = z_rows.sum()
    else:
        z = z_rows
    return ce + z, z


def targets_with_ignored(rows: int, vocab: int, seed: int, ignore_index: int = -100) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, vocab, (rows,), generator=gen)
    target[1::3] = ignore_index
    return target


def upstream_for(loss: torch.Tensor) -> torch.Tensor:
    return torch.rand(loss.shape, dtype=torch.float64) + 0.5 if loss.dim() else torch.tensor(1.7, dtype=torch.float64)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize(("z_scale", "smoothing", "softcap"), [(0.0, 0.0, None), (1e-2, 0.1, None), (0.0, 0.2, 3.0)])
def test_cross_entropy_matches_torch_and_formula(reduction, with_weight, z_scale, smoothing, softcap):
    rows, vocab = 7, 33
    x64 = non_contiguous(rows, vocab, seed=4) * 2
    target = targets_with_ignored(rows, vocab, seed=5)
    weight = torch.rand(vocab, dtype=torch.float64) + 0.5 if with_weight else None
    x = leaf(x64)
    loss, z_loss, accuracy, predicted = LigerCrossEntropyFunction.apply(
        x, target, weight, -100, z_scale, smoothing, reduction, softcap, True, True, True
    )
    xr = leaf(x64)
    loss_ref, z_ref = ce_reference(xr, target, weight, -100, z_scale, smoothing, reduction, softcap)
    close(loss, loss_ref, torch.float64)
    close(z_loss, z_ref, torch.float64)

    keep = target != -100
    argmax = x64.argmax(-1)
    assert torch.equal(predicted, torch.where(keep, argmax, -1))
    close(accuracy, (argmax == target)[keep].double().mean(), torch.float32)  # a fp32 metric

    g = upstream_for(loss_ref)
    (dx,) = torch.autograd.grad((loss * g).sum(), [x])
    (dx_ref,) = torch.autograd.grad((loss_ref * g).sum(), [xr])
    close(dx, dx_ref, torch.float64)
    assert dx[~keep].abs().max() == 0


def test_cross_entropy_unrequested_extras_are_none_and_extras_carry_no_gradient():
    x, target = leaf(torch.randn(4, 9)), torch.tensor([1, 2, -100, 0])
    _, z_loss, accuracy, predicted = LigerCrossEntropyFunction.apply(x, target, None)
    assert z_loss is None and accuracy is None and predicted is None
    _, z_loss, accuracy, predicted = LigerCrossEntropyFunction.apply(
        x, target, None, -100, 0.1, 0.0, "mean", None, True, True, True
    )
    assert not z_loss.requires_grad and not accuracy.requires_grad and predicted.dtype == torch.int64


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_low_precision_inputs(dtype, reduction):
    x64, target = torch.randn(6, 40, dtype=torch.float64) * 3, targets_with_ignored(6, 40, seed=6)
    x = leaf(x64, dtype)
    loss, *_ = LigerCrossEntropyFunction.apply(x, target, None, -100, 1e-3, 0.05, reduction, 5.0)
    assert loss.dtype == torch.float32  # losses are at least fp32
    xr = leaf(x.detach().double())
    loss_ref, _ = ce_reference(xr, target, None, -100, 1e-3, 0.05, reduction, 5.0)
    close(loss, loss_ref, dtype)
    g = upstream_for(loss_ref)
    (dx,) = torch.autograd.grad((loss.double() * g).sum(), [x])
    (dx_ref,) = torch.autograd.grad((loss_ref * g).sum(), [xr])
    assert dx.dtype == dtype
    close(dx, dx_ref, dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_no_kept_row(reduction):
    x = leaf(torch.randn(3, 8))
    target = torch.full((3,), 5)
    loss, z_loss, accuracy, predicted = LigerCrossEntropyFunction.apply(
        x, target, torch.rand(8), 5, 0.1, 0.1, reduction, None, True, True, True
    )
    assert torch.all(loss == 0) and torch.all(z_loss == 0) and accuracy == 0
    assert torch.all(predicted == -1)
    (dx,) = torch.autograd.grad(loss.sum(), [x])
    assert torch.all(dx == 0)


def test_cross_entropy_ignore_index_inside_the_vocabulary():
    x64, target = torch.randn(5, 6, dtype=torch.float64), torch.tensor([0, 3, 0, 5, 2])
    loss, *_ = LigerCrossEntropyFunction.apply(leaf(x64), target, None, 0)
    close(loss, F.cross_entropy(x64, target, ignore_index=0), torch.float64)


def test_cross_entropy_chunking_does_not_change_results(monkeypatch):
    x64, target = torch.randn(9, 17, dtype=torch.float64), targets_with_ignored(9, 17, seed=7)
    weight = torch.rand(17, dtype=torch.float64)

    def run():
        x = leaf(x64)
        loss, z, acc, pred = LigerCrossEntropyFunction.apply(
            x, target, weight, -100, 0.01, 0.1, "mean", 4.0, True, True, True
        )
        (dx,) = torch.autograd.grad(loss, [x])
        return loss, z, acc, pred, dx

    whole = run()
    monkeypatch.setattr(ce_backend, "CHUNK_ELEMENTS", 2 * 17)  # two rows per chunk, the last one alone
    assert ce_backend.chunk_rows(17) == 2
    for a, b in zip(whole, run()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- fused linear cross-entropy


def flce_reference(x, w, b, target, ce_weight, z_scale, smoothing, reduction, softcap, token_scaling):
    logits = x @ w.T
    if b is not None:
        logits = logits + b
    if not token_scaling:
        return ce_reference(logits, target, ce_weight, -100, z_scale, smoothing, reduction, softcap)
    rows, z_rows = ce_reference(logits, target, ce_weight, -100, z_scale, smoothing, "none", softcap)
    capped = logits if softcap is None else softcap * torch.tanh(logits / softcap)
    keep = target != -100
    prob = torch.softmax(capped, -1).gather(1, torch.where(keep, target, 0)[:, None]).squeeze(1).detach()
    rows, z_rows = rows * prob, z_rows * prob
    if reduction == "none":
        return rows, z_rows
    if reduction == "sum":
        return rows.sum(), z_rows.sum()
    weight_t = ce_weight[target[keep]].sum() if ce_weight is not None else keep.sum()
    ce_rows = rows - z_rows
    return ce_rows.sum() / weight_t + z_rows.sum() / keep.sum(), z_rows.sum() / keep.sum()


FLCE_CASES = [
    # (with_bias, with_ce_weight, z_scale, smoothing, softcap, token_scaling)
    (False, False, 0.0, 0.0, None, False),
    (True, True, 1e-2, 0.1, None, False),
    (True, False, 0.0, 0.1, 4.0, False),
    (False, True, 1e-2, 0.0, 6.0, True),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", FLCE_CASES)
def test_fused_linear_cross_entropy_equals_cross_entropy_of_the_linear(case, reduction):
    with_bias, with_ce_weight, z_scale, smoothing, softcap, token_scaling = case
    rows, hidden, vocab = 7, 6, 19
    gen = torch.Generator().manual_seed(8)
    x64 = torch.randn(rows, hidden, generator=gen, dtype=torch.float64)
    w64 = torch.randn(vocab, hidden, generator=gen, dtype=torch.float64)
    b64 = torch.randn(vocab, generator=gen, dtype=torch.float64) if with_bias else None
    ce_weight = torch.rand(vocab, generator=gen, dtype=torch.float64) + 0.5 if with_ce_weight else None
    target = targets_with_ignored(rows, vocab, seed=9)

    x, w, b = leaf(x64), leaf(w64), (leaf(b64) if with_bias else None)
    loss, z_loss, accuracy, predicted = LigerFusedLinearCrossEntropyFunction.apply(
        x, w, target, b, ce_weight, -100, z_scale, smoothing, reduction, softcap, True, None, token_scaling, True, True
    )
    xr, wr, br = leaf(x64), leaf(w64), (leaf(b64) if with_bias else None)
    loss_ref, z_ref = flce_reference(
        xr, wr, br, target, ce_weight, z_scale, smoothing, reduction, softcap, token_scaling
    )
    close(loss, loss_ref, torch.float64)
    close(z_loss, z_ref, torch.float64)
    logits = x64 @ w64.T + (b64 if with_bias else 0)
    keep = target != -100
    assert torch.equal(predicted, torch.where(keep, logits.argmax(-1), -1))
    close(accuracy, (logits.argmax(-1) == target)[keep].double().mean(), torch.float32)

    g = upstream_for(loss_ref)
    ours = grads_of([loss], [g], [x, w, b])
    ref = grads_of([loss_ref], [g], [xr, wr, br])
    close(ours[id(x)], ref[id(xr)], torch.float64)
    close(ours[id(w)], ref[id(wr)], torch.float64)
    if with_bias:
        close(ours[id(b)], ref[id(br)], torch.float64)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_fused_linear_cross_entropy_chunking_does_not_change_results(monkeypatch, reduction):
    rows, hidden, vocab = 10, 5, 13
    gen = torch.Generator().manual_seed(10)
    x64 = torch.randn(rows, hidden, generator=gen, dtype=torch.float64)
    w64 = torch.randn(vocab, hidden, generator=gen, dtype=torch.float64)
    b64 = torch.randn(vocab, generator=gen, dtype=torch.float64)
    target = targets_with_ignored(rows, vocab, seed=11)
    g = torch.rand(rows, dtype=torch.float64) if reduction == "none" else torch.tensor(0.7, dtype=torch.float64)

    def run():
        x, w, b = leaf(x64), leaf(w64), leaf(b64)
        out = LigerFusedLinearCrossEntropyFunction.apply(
            x, w, target, b, None, -100, 1e-3, 0.1, reduction, 5.0, True, None, True, True, True
        )
        grads = torch.autograd.grad((out[0] * g).sum(), [x, w, b])
        return (*out, *grads)

    whole = run()
    for per_chunk in (1, 3):
        monkeypatch.setattr(ce_backend, "CHUNK_ELEMENTS", per_chunk * vocab)
        for a, b in zip(whole, run()):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_fused_linear_cross_entropy_half_weights_accumulate_wide():
    rows, hidden, vocab = 12, 8, 24
    gen = torch.Generator().manual_seed(12)
    x64 = torch.randn(rows, hidden, generator=gen, dtype=torch.float64)
    w64 = torch.randn(vocab, hidden, generator=gen, dtype=torch.float64) * 0.5
    target = targets_with_ignored(rows, vocab, seed=13)
    x, w = leaf(x64, torch.bfloat16), leaf(w64, torch.bfloat16)
    loss, *_ = LigerFusedLinearCrossEntropyFunction.apply(x, w, target)
    loss.backward()
    assert x.grad.dtype == w.grad.dtype == torch.bfloat16 and loss.dtype == torch.float32

    xr, wr = leaf(x.detach().double()), leaf(w.detach().double())
    loss_ref, _ = flce_reference(xr, wr, None, target, None, 0.0, 0.0, "mean", None, False)
    loss_ref.backward()
    close(loss, loss_ref, torch.bfloat16)
    close(x.grad, xr.grad, torch.bfloat16)
    close(w.grad, wr.grad, torch.bfloat16)

    x2, w2 = leaf(x.detach()), leaf(w.detach())
    explicit, *_ = LigerFusedLinearCrossEntropyFunction.apply(
        x2, w2, target, None, None, -100, 0.0, 0.0, "mean", None, False, torch.bfloat16
    )
    explicit.backward()
    close(w2.grad, wr.grad, torch.bfloat16, 2.0)


def test_fused_linear_cross_entropy_with_no_kept_row():
    x, w = leaf(torch.randn(4, 3)), leaf(torch.randn(5, 3))
    target = torch.full((4,), -100)
    loss, _, accuracy, predicted = LigerFusedLinearCrossEntropyFunction.apply(
        x, w, target, None, None, -100, 0.0, 0.0, "mean", None, False, None, False, True, True
    )
    assert loss == 0 and accuracy == 0 and torch.all(predicted == -1)
    loss.backward()
    assert torch.all(x.grad == 0) and torch.all(w.grad == 0)
    assert not math.isnan(loss.item())


def test_cross_entropy_keeps_one_vocabulary_sized_buffer_and_fused_linear_none():
    rows, hidden, vocab = 6, 4, 11
    x, w = leaf(torch.randn(rows, hidden)), leaf(torch.randn(vocab, hidden))
    target = targets_with_ignored(rows, vocab, seed=14)
    logits = leaf(torch.randn(rows, vocab, dtype=torch.bfloat16))
    loss, *_ = LigerCrossEntropyFunction.apply(logits, target, None, -100, 0.1, 0.1, "mean", 3.0)
    assert [tuple(t.shape) for t in loss.grad_fn.saved_tensors] == [(rows, vocab)]
    for reduction in ("mean", "none"):
        loss, *_ = LigerFusedLinearCrossEntropyFunction.apply(x, w, target, None, None, -100, 0.0, 0.0, reduction)
        saved = [tuple(t.shape) for t in loss.grad_fn.saved_tensors if t is not None]
        assert (rows, vocab) not in saved
