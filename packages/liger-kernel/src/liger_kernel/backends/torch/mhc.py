"""mHC in pure PyTorch (math: :mod:`liger_kernel.ops.mhc`), float32 throughout.

The pieces are functions of their own because 0.8.5's launchers
(``liger_kernel.ops.mhc.mhc_*_fwd`` / ``_bwd``) return them. Backward passes
are written out (not autograd over the forward) so that each piece is the
statement of its gradient; the Sinkhorn backward walks the iterations in
reverse over the history of matrices, which the coefficient Function
recomputes in its backward rather than keeping from the forward.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.ops.mhc import streams_of


def mm_norm_forward(x: torch.Tensor, phi: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mix, invr) for tokens x (N, K) and phi (K, M)."""
    xf = x.float()
    invr = torch.rsqrt(xf.square().mean(-1) + eps)
    return (xf @ phi.float()) * invr[:, None], invr


def mm_norm_backward(
    x: torch.Tensor, phi: torch.Tensor, mix: torch.Tensor, invr: torch.Tensor, grad_mix: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_x (N, K), grad_phi (K, M)), float32: with z = x @ phi and mix = z * invr,
    dz = grad_mix * invr and d invr / dx = -invr**3 x / K."""
    xf, grad_mix = x.float(), grad_mix.float()
    grad_z = grad_mix * invr[:, None]
    row_term = (grad_mix * mix).sum(-1) * invr.square() / x.shape[-1]
    grad_x = grad_z @ phi.float().t() - row_term[:, None] * xf
    return grad_x, xf.t() @ grad_z


def residual_logits(mix: torch.Tensor, b: torch.Tensor, alpha_res: torch.Tensor, hc: int) -> torch.Tensor:
    """L (N, HC, HC)."""
    logits = mix[:, 2 * hc :] * alpha_res.float().reshape(()) + b[2 * hc :].float()
    return logits.reshape(-1, hc, hc)


def _row_normalized(a: torch.Tensor, eps: float) -> torch.Tensor:
    return a / (a.sum(-1, keepdim=True) + eps)


def _column_normalized(a: torch.Tensor, eps: float) -> torch.Tensor:
    return a / (a.sum(-2, keepdim=True) + eps)


def sinkhorn_history(logits: torch.Tensor, tmax: int, eps: float) -> torch.Tensor:
    """The matrix after each of the ``tmax`` iterations, (N, tmax, HC, HC); the last is h_res."""
    hist = logits.new_empty((logits.shape[0], tmax, *logits.shape[1:]))
    a = _column_normalized(torch.softmax(logits, -1) + eps, eps)
    hist[:, 0] = a
    for t in range(1, tmax):
        a = _column_normalized(_row_normalized(a, eps), eps)
        hist[:, t] = a
    return hist


def _column_normalized_backward(a: torch.Tensor, out: torch.Tensor, grad: torch.Tensor, eps: float) -> torch.Tensor:
    # out = a / (s + eps), s the column sums of a: da = (grad - sum_o grad * out) / (s + eps)
    return (grad - (grad * out).sum(-2, keepdim=True)) / (a.sum(-2, keepdim=True) + eps)


def _row_normalized_backward(a: torch.Tensor, out: torch.Tensor, grad: torch.Tensor, eps: float) -> torch.Tensor:
    return (grad - (grad * out).sum(-1, keepdim=True)) / (a.sum(-1, keepdim=True) + eps)


def sinkhorn_backward(logits: torch.Tensor, hist: torch.Tensor, grad_hres: torch.Tensor, eps: float) -> torch.Tensor:
    """The gradient of L for the gradient of h_res, back through every iteration."""
    grad = grad_hres.reshape(logits.shape)
    for t in range(hist.shape[1] - 1, 0, -1):
        rows = _row_normalized(hist[:, t - 1], eps)
        grad = _column_normalized_backward(rows, hist[:, t], grad, eps)
        grad = _row_normalized_backward(hist[:, t - 1], rows, grad, eps)
    p = torch.softmax(logits, -1)
    grad = _column_normalized_backward(p + eps, hist[:, 0], grad, eps)
    return p * (grad - (grad * p).sum(-1, keepdim=True))


def split_sinkhorn_forward(
    mix: torch.Tensor,
    b: torch.Tensor,
    alpha_pre: torch.Tensor,
    alpha_post: torch.Tensor,
    alpha_res: torch.Tensor,
    tmax: int,
    pre_eps: float,
    sinkhorn_eps: float,
    post_mult: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(h_pre, h_post, h_res, history) from mix (N, M)."""
    hc = streams_of(mix.shape[-1])
    mix, bf = mix.float(), b.float()
    h_pre = torch.sigmoid(mix[:, :hc] * alpha_pre.float().reshape(()) + bf[:hc]) + pre_eps
    h_post = torch.sigmoid(mix[:, hc : 2 * hc] * alpha_post.float().reshape(()) + bf[hc : 2 * hc]) * post_mult
    hist = sinkhorn_history(residual_logits(mix, bf, alpha_res, hc), tmax, sinkhorn_eps)
    return h_pre, h_post, hist[:, -1].clone(), hist


def pre_forward(x: torch.Tensor, h_pre: torch.Tensor) -> torch.Tensor:
    return torch.einsum("nic,ni->nc", x.float(), h_pre.float())


def pre_backward(x: torch.Tensor, h_pre: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    grad = grad.float()
    return h_pre.float()[:, :, None] * grad[:, None, :], torch.einsum("nc,nic->ni", grad, x.float())


def post_res_forward(x: torch.Tensor, f_out: torch.Tensor, h_post: torch.Tensor, h_res: torch.Tensor) -> torch.Tensor:
    mixed = torch.einsum("noi,nic->noc", h_res.float(), x.float())
    return mixed + h_post.float()[:, :, None] * f_out.float()[:, None, :]


def post_res_backward(
    x: torch.Tensor, f_out: torch.Tensor, h_post: torch.Tensor, h_res: torch.Tensor, grad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    grad = grad.float()
    return (
        torch.einsum("noi,noc->nic", h_res.float(), grad),
        torch.einsum("no,noc->nc", h_post.float(), grad),
        torch.einsum("noc,nc->no", grad, f_out.float()),
        torch.einsum("noc,nic->noi", grad, x.float()),
    )


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """x (..., HC, C) as (N, HC, C)."""
    return x.reshape(-1, x.shape[-2], x.shape[-1])


def coefficient_gradients(
    mix: torch.Tensor,
    b: torch.Tensor,
    alphas: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    grads: tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None],
    tmax: int,
    sinkhorn_eps: float,
    post_mult: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_mix (N, M), grad_b (M,), grad of the three alphas (3,)), float32, for the
    gradients of h_pre, h_post, h_res (None: zero)."""
    hc = streams_of(mix.shape[-1])
    n = mix.shape[0]
    bf = b.float()
    alpha = torch.stack([a.float().reshape(()) for a in alphas])
    grad_logits = []
    for k, grad in enumerate(grads[:2]):
        lo = k * hc
        if grad is None:
            grad_logits.append(mix.new_zeros((n, hc)))
            continue
        s = torch.sigmoid(mix[:, lo : lo + hc] * alpha[k] + bf[lo : lo + hc])
        slope = s * (1.0 - s) * (post_mult if k == 1 else 1.0)
        grad_logits.append(grad.reshape(n, hc).float() * slope)
    if grads[2] is None:
        grad_logits.append(mix.new_zeros((n, hc * hc)))
    else:
        logits = residual_logits(mix, bf, alphas[2], hc)
        hist = sinkhorn_history(logits, tmax, sinkhorn_eps)
        grad_logits.append(sinkhorn_backward(logits, hist, grads[2].float(), sinkhorn_eps).reshape(n, hc * hc))
    grad_logits_all = torch.cat(grad_logits, dim=1)
    scale = torch.cat([alpha[0].expand(hc), alpha[1].expand(hc), alpha[2].expand(hc * hc)])
    per_alpha = grad_logits_all * mix
    grad_alpha = torch.stack([per_alpha[:, :hc].sum(), per_alpha[:, hc : 2 * hc].sum(), per_alpha[:, 2 * hc :].sum()])
    return grad_logits_all * scale, grad_logits_all.sum(0), grad_alpha


class MHCCoeffsFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        phi: torch.Tensor,
        b: torch.Tensor,
        alpha_pre: torch.Tensor,
        alpha_post: torch.Tensor,
        alpha_res: torch.Tensor,
        allow_fp32: bool,
        tmax: int,
        rms_eps: float,
        pre_eps: float,
        sinkhorn_eps: float,
        post_mult: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hc = x.shape[-2]
        outer = x.shape[:-2]
        x_mat = x.reshape(-1, x.shape[-2] * x.shape[-1])
        mix, invr = mm_norm_forward(x_mat, phi, rms_eps)
        h_pre, h_post, h_res, _ = split_sinkhorn_forward(
            mix, b, alpha_pre, alpha_post, alpha_res, tmax, pre_eps, sinkhorn_eps, post_mult
        )
        ctx.save_for_backward(x, phi, b, alpha_pre, alpha_post, alpha_res, mix, invr)
        ctx.options = (tmax, sinkhorn_eps, post_mult)
        return h_pre.reshape(*outer, hc), h_post.reshape(*outer, hc), h_res.reshape(*outer, hc, hc)

    @staticmethod
    def backward(ctx: Any, grad_pre: Any, grad_post: Any, grad_res: Any) -> tuple[Any, ...]:
        x, phi, b, alpha_pre, alpha_post, alpha_res, mix, invr = ctx.saved_tensors
        tmax, sinkhorn_eps, post_mult = ctx.options
        grad_mix, grad_b, grad_alpha = coefficient_gradients(
            mix, b, (alpha_pre, alpha_post, alpha_res), (grad_pre, grad_post, grad_res), tmax, sinkhorn_eps, post_mult
        )
        x_mat = x.reshape(-1, x.shape[-2] * x.shape[-1])
        grad_x, grad_phi = mm_norm_backward(x_mat, phi, mix, invr, grad_mix)
        alphas = (alpha_pre, alpha_post, alpha_res)
        return (
            grad_x.reshape(x.shape).to(x.dtype),
            grad_phi.to(phi.dtype),
            grad_b.to(b.dtype),
            *(g.reshape(a.shape).to(a.dtype) for g, a in zip(grad_alpha, alphas)),
            None,
            None,
            None,
            None,
            None,
            None,
        )


class MHCPreFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, h_pre: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, h_pre)
        out = pre_forward(_tokens(x), h_pre.reshape(-1, x.shape[-2]))
        return out.reshape(*x.shape[:-2], x.shape[-1]).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, h_pre = ctx.saved_tensors
        grad_x, grad_h = pre_backward(_tokens(x), h_pre.reshape(-1, x.shape[-2]), grad.reshape(-1, x.shape[-1]))
        return grad_x.reshape(x.shape).to(x.dtype), grad_h.reshape(h_pre.shape).to(h_pre.dtype)


class MHCPostResFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, f_out: torch.Tensor, h_post: torch.Tensor, h_res: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(x, f_out, h_post, h_res)
        hc, c = x.shape[-2:]
        out = post_res_forward(_tokens(x), f_out.reshape(-1, c), h_post.reshape(-1, hc), h_res.reshape(-1, hc, hc))
        return out.reshape(x.shape).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, f_out, h_post, h_res = ctx.saved_tensors
        hc, c = x.shape[-2:]
        grads = post_res_backward(
            _tokens(x), f_out.reshape(-1, c), h_post.reshape(-1, hc), h_res.reshape(-1, hc, hc), _tokens(grad)
        )
        return tuple(g.reshape(t.shape).to(t.dtype) for g, t in zip(grads, (x, f_out, h_post, h_res)))
