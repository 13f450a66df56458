"""LigerMHC, the mHC / AttnRes functional forms and 0.8.5's mhc_* / attn_res_* launchers,
against plain PyTorch definitions written from the papers' formulas (on the torch backend)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from liger_kernel.ops import attn_res as attn_res_ops
from liger_kernel.ops import mhc as mhc_ops
from liger_kernel.transformers import LigerMHC
from liger_kernel.transformers import functional as LF

TOL = dict(rtol=1e-5, atol=1e-5)


def sinkhorn(logits: torch.Tensor, tmax: int, eps: float) -> torch.Tensor:
    a = torch.softmax(logits, -1) + eps
    a = a / (a.sum(-2, keepdim=True) + eps)
    for _ in range(tmax - 1):
        a = a / (a.sum(-1, keepdim=True) + eps)
        a = a / (a.sum(-2, keepdim=True) + eps)
    return a


def reference_mhc(x, layer, phi, b, alphas, tmax=20, rms_eps=1e-6, pre_eps=0.0, sinkhorn_eps=1e-6, post_mult=2.0):
    """One mHC block in float64: coefficients, layer on the pre-aggregated input, post/residual mix."""
    hc, c = x.shape[-2:]
    tokens = x.double().reshape(*x.shape[:-2], hc * c)
    mix = (tokens @ phi.double()) * torch.rsqrt(tokens.square().mean(-1, keepdim=True) + rms_eps)
    b = b.double()
    h_pre = torch.sigmoid(alphas[0] * mix[..., :hc] + b[:hc]) + pre_eps
    h_post = post_mult * torch.sigmoid(alphas[1] * mix[..., hc : 2 * hc] + b[hc : 2 * hc])
    logits = (alphas[2] * mix[..., 2 * hc :] + b[2 * hc :]).reshape(*x.shape[:-2], hc, hc)
    h_res = sinkhorn(logits, tmax, sinkhorn_eps)
    x_in = (h_pre[..., None] * x.double()).sum(-2)
    f_out = layer(x_in)
    return h_res @ x.double() + h_post[..., None] * f_out[..., None, :], (h_pre, h_post, h_res)


def test_module_matches_the_reference_forward_and_backward():
    torch.manual_seed(0)
    layer = nn.Linear(16, 16, dtype=torch.float32)
    module = LigerMHC(layer, hc=4, c=16, phi_dtype=torch.float32, allow_fp32=True, tmax=8)
    with torch.no_grad():
        module.b.normal_(0, 0.3)
        module.phi.mul_(10)
    x = torch.randn(2, 3, 4, 16, requires_grad=True)
    out = module(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    reference_layer = nn.Linear(16, 16, dtype=torch.float64)
    reference_layer.load_state_dict({k: v.double() for k, v in layer.state_dict().items()})
    params = [module.phi, module.b, module.alpha_pre, module.alpha_post, module.alpha_res]
    ref_params = [p.detach().double().requires_grad_() for p in params]
    x_ref = x.detach().double().requires_grad_()
    want, _ = reference_mhc(x_ref, reference_layer, ref_params[0], ref_params[1], ref_params[2:], tmax=8)
    torch.testing.assert_close(out.double(), want, **TOL)
    grad = torch.randn_like(out)
    out.backward(grad)
    want.backward(grad.double())
    torch.testing.assert_close(x.grad.double(), x_ref.grad, **TOL)
    for got, ref in zip(params, ref_params, strict=True):
        torch.testing.assert_close(got.grad.double(), ref.grad, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(layer.weight.grad.double(), reference_layer.weight.grad, rtol=1e-5, atol=1e-4)


def test_module_parameters_and_refusals():
    module = LigerMHC(nn.Linear(8, 8), hc=2, c=8)
    assert module.phi.shape == (16, 8) and module.phi.dtype == torch.float16
    assert module.b.shape == (8,) and module.b.dtype == torch.float32
    assert module.alpha_pre.shape == () and float(module.alpha_res) == 1.0
    assert "hc=2, c=8" in repr(module)
    with pytest.raises(ValueError, match=r"\[hc, c\]"):
        module(torch.randn(3, 4, 8, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="allow_fp32"):
        module(torch.randn(3, 2, 8))
    with pytest.warns(UserWarning, match="hc=17"):
        LigerMHC(nn.Identity(), hc=17, c=2)


def test_module_casts_the_layer_input_to_the_layer_dtype():
    """bfloat16 streams around a float32 layer: the layer sees float32, the streams stay bfloat16."""
    seen = []

    class Probe(nn.Linear):
        def forward(self, x):
            seen.append(x.dtype)
            return super().forward(x)

    module = LigerMHC(Probe(8, 8), hc=2, c=8, phi_dtype=torch.bfloat16)
    out = module(torch.randn(5, 2, 8, dtype=torch.bfloat16))
    assert seen == [torch.float32] and out.dtype == torch.bfloat16


def test_functional_forward_apply_and_coeffs_agree():
    torch.manual_seed(1)
    hc, c = 3, 8
    x = torch.randn(4, hc, c, dtype=torch.bfloat16)
    phi = torch.randn(hc * c, hc * hc + 2 * hc, dtype=torch.bfloat16) * 0.3
    b = torch.randn(hc * hc + 2 * hc) * 0.1
    alphas = [torch.tensor(v) for v in (0.9, 1.1, 1.3)]
    layer = nn.Tanh()
    out, coeffs = LF.liger_mhc_forward(x, layer, phi, b, *alphas, tmax=5, return_coeffs=True)
    h_pre, h_post, h_res = LF.liger_mhc_coeffs(x, phi, b, *alphas, tmax=5)
    for got, want in zip(coeffs, (h_pre, h_post, h_res), strict=True):
        assert torch.equal(got, want)
    want, want_coeffs = reference_mhc(x, torch.tanh, phi, b, alphas, tmax=5)
    torch.testing.assert_close(out.double(), want, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(h_res.double(), want_coeffs[2], rtol=1e-5, atol=1e-5)
    x_in = LF.liger_mhc_pre(x, h_pre)
    x_out, x_in_again = LF.liger_mhc_apply(x, layer(x_in), h_pre, h_post, h_res, return_x_in=True)
    assert torch.equal(x_out, out) and torch.equal(x_in_again, x_in)
    assert torch.equal(LF.liger_mhc_apply(x, layer(x_in), h_pre, h_post, h_res), out)


def test_sinkhorn_rows_and_columns_sum_to_about_one():
    """The residual mix is (nearly) doubly stochastic after enough iterations."""
    x = torch.randn(64, 4, 32, dtype=torch.bfloat16)
    phi = torch.randn(128, 24, dtype=torch.bfloat16) * 0.1
    _, _, h_res = LF.liger_mhc_coeffs(x, phi, torch.zeros(24), *(torch.tensor(1.0) for _ in range(3)), tmax=50)
    ones = torch.ones(64, 4)
    torch.testing.assert_close(h_res.sum(-1), ones, rtol=0, atol=1e-3)
    torch.testing.assert_close(h_res.sum(-2), ones, rtol=0, atol=1e-4)


def test_0_8_5_launchers_compose_to_the_ops():
    """mhc_mm_norm_fwd -> mhc_split_sinkhorn_fwd give the op's coefficients; the backward
    launchers give the op's gradients; output buffers are filled in place."""
    torch.manual_seed(2)
    n, hc, c = 6, 2, 8
    m = hc * hc + 2 * hc
    x = torch.randn(n, hc, c, dtype=torch.bfloat16)
    phi = torch.randn(hc * c, m, dtype=torch.bfloat16) * 0.3
    b = torch.randn(m) * 0.2
    alphas = [torch.tensor(v) for v in (0.9, 1.1, 1.3)]
    out_mix = torch.empty(n, m)
    mix, invr = mhc_ops.mhc_mm_norm_fwd(x.reshape(n, -1), phi, 1e-6, out_mix=out_mix)
    assert mix is out_mix and invr.shape == (n,)
    h_pre, h_post, h_res, hist = mhc_ops.mhc_split_sinkhorn_fwd(
        mix, b, *alphas, tmax=7, pre_eps=0.0, sinkhorn_eps=1e-6, post_mult=2.0, return_hist=True
    )
    assert hist.shape == (n, 7, hc, hc) and torch.equal(hist[:, -1], h_res)
    want = LF.liger_mhc_coeffs(x, phi, b, *alphas, tmax=7)
    for got, ref in zip((h_pre, h_post, h_res), want, strict=True):
        torch.testing.assert_close(got, ref, **TOL)

    grad_hres = torch.randn(n, hc, hc)
    logits = mhc_ops.mhc_sinkhorn_bwd(mix, b, alphas[2], grad_hres, tmax=7, sinkhorn_eps=1e-6)
    with_hist = mhc_ops.mhc_sinkhorn_bwd(mix, b, alphas[2], grad_hres, tmax=7, sinkhorn_eps=1e-6, hist=hist)
    leaf = (mix[:, 2 * hc :] * alphas[2] + b[2 * hc :]).reshape(n, hc, hc).requires_grad_()
    sinkhorn(leaf, 7, 1e-6).backward(grad_hres)
    torch.testing.assert_close(logits, leaf.grad, **TOL)
    torch.testing.assert_close(with_hist, leaf.grad, **TOL)

    grad_mix = torch.randn(n, m)
    grad_x, grad_phi = mhc_ops.mhc_mm_norm_bwd(x.reshape(n, -1), phi, mix, invr, grad_mix)
    xd, phid = x.reshape(n, -1).double().requires_grad_(), phi.double().requires_grad_()
    ((xd @ phid) * torch.rsqrt(xd.square().mean(-1, keepdim=True) + 1e-6)).backward(grad_mix.double())
    assert grad_x.dtype == torch.bfloat16 and grad_phi.dtype == torch.bfloat16
    torch.testing.assert_close(grad_x.double(), xd.grad, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(grad_phi.double(), phid.grad, rtol=2e-2, atol=5e-2)

    f = torch.randn(n, c)
    x_in = mhc_ops.mhc_pre_fwd(x, h_pre)
    x_out = mhc_ops.mhc_post_res_fwd(x, f, h_post, h_res)
    assert x_in.dtype == torch.float32 and x_out.dtype == torch.float32
    torch.testing.assert_close(x_in, (h_pre[..., None] * x.float()).sum(1), **TOL)
    torch.testing.assert_close(x_out, h_res @ x.float() + h_post[..., None] * f[:, None], **TOL)
    g_in, g_out = torch.randn(n, c), torch.randn(n, hc, c)
    dx, dh = mhc_ops.mhc_pre_bwd(x, h_pre, g_in)
    torch.testing.assert_close(dx, h_pre[..., None] * g_in[:, None], **TOL)
    torch.testing.assert_close(dh, (g_in[:, None] * x.float()).sum(-1), **TOL)
    dx, df, dpost, dres = mhc_ops.mhc_post_res_bwd(x, f, h_post, h_res, g_out)
    torch.testing.assert_close(dx, h_res.transpose(1, 2) @ g_out, **TOL)
    torch.testing.assert_close(df, (h_post[..., None] * g_out).sum(1), **TOL)
    torch.testing.assert_close(dpost, (g_out * f[:, None]).sum(-1), **TOL)
    torch.testing.assert_close(dres, g_out @ x.float().transpose(1, 2), **TOL)


def test_split_sinkhorn_refuses_an_m_of_no_stream_count():
    with pytest.raises(ValueError, match="HC"):
        mhc_ops.mhc_split_sinkhorn_fwd(
            torch.zeros(2, 7), torch.zeros(7), *(torch.tensor(1.0) for _ in range(3)),
            tmax=2, pre_eps=0.0, sinkhorn_eps=1e-6, post_mult=2.0,
        )  # fmt: skip


def test_attn_res_list_input_and_launchers():
    torch.manual_seed(3)
    blocks = [torch.randn(2, 3, 16, requires_grad=True) for _ in range(4)]
    w_query = (torch.randn(16) * 0.5).requires_grad_()
    w_norm = (torch.rand(16) + 0.5).requires_grad_()
    h = LF.liger_attn_res(blocks, w_query, w_norm)
    V = torch.stack([t.detach() for t in blocks])
    keys = V * torch.rsqrt(V.square().mean(-1, keepdim=True) + 1e-6) * w_norm.detach()
    weights = torch.softmax((keys * w_query.detach()).sum(-1), 0)
    torch.testing.assert_close(h, (weights[..., None] * V).sum(0), **TOL)
    h.sum().backward()
    assert all(t.grad is not None and t.grad.shape == (2, 3, 16) for t in blocks)

    out, V_3d, alpha, rstd = attn_res_ops.attn_res_forward(blocks, w_query, w_norm)
    assert torch.equal(out, h.detach()) and V_3d.shape == (4, 6, 16)
    torch.testing.assert_close(alpha, weights.reshape(4, 6).t(), **TOL)
    torch.testing.assert_close(rstd, torch.rsqrt(V.square().mean(-1) + 1e-6).reshape(4, 6).t(), **TOL)
    dh = torch.randn(2, 3, 16)
    dV, dq, dn = attn_res_ops.attn_res_backward(dh, V_3d, w_query, w_norm, alpha, rstd)
    leaves = [
        V_3d.clone().requires_grad_(),
        w_query.detach().clone().requires_grad_(),
        w_norm.detach().clone().requires_grad_(),
    ]
    LF.liger_attn_res(*leaves).backward(dh.reshape(6, 16))
    for got, leaf in zip((dV, dq, dn), leaves, strict=True):
        torch.testing.assert_close(got, leaf.grad, **TOL)
    with pytest.raises(ValueError, match="V_stacked"):
        LF.liger_attn_res([], w_query, w_norm)
