"""Manifold-constrained hyper-connections (mHC): HC residual streams of width C
mixed around a layer F by data-dependent coefficients. Three ops; leading
dimensions of ``x`` (shape (..., HC, C)) are flattened to N tokens.

``mhc_coeffs`` (:class:`LigerMHCCoeffsFunction`), with M = HC*HC + 2*HC and
phi of shape (HC*C, M), per token (x_t flattened to K = HC*C values):
    invr  = 1 / sqrt(mean(x_t**2) + rms_eps)
    mix   = (x_t @ phi) * invr                                   (M values)
    h_pre  = sigmoid(alpha_pre * mix[0:HC] + b[0:HC]) + pre_eps
    h_post = post_mult * sigmoid(alpha_post * mix[HC:2HC] + b[HC:2HC])
    L      = alpha_res * mix[2HC:] + b[2HC:], seen as (HC, HC) (row o, column i)
    h_res  = Sinkhorn(L):  A = softmax(L over each row) + sinkhorn_eps
                           A = A / (column sums of A + sinkhorn_eps)
                           then tmax - 1 times:
                               A = A / (row sums of A + sinkhorn_eps)
                               A = A / (column sums of A + sinkhorn_eps)
The products x * phi are exact in float32 (both upcast), their sums and all
the rest are float32; h_pre, h_post, h_res are float32 whatever x's dtype.
In the backward, dx = dz @ phi^T - (sum_m grad_mix * mix) * invr**2 / K * x and
dphi = x^T @ dz (dz = grad_mix * invr) multiply the float32 dz by phi and x:
a Triton backend runs those products at its default float32 matmul precision
when x and phi are 16-bit (TF32 on NVIDIA, a relative 2**-11 per product, below
the rounding of a 16-bit gradient) and at IEEE precision when either is float32.
x is bfloat16 or float16, or float32 with ``allow_fp32=True``; phi, b and the
alphas (one element each) any of the three. Gradients go to x, phi, b and the
three alphas, each in its own dtype, by the chain rule through every
Sinkhorn iteration (none of them is treated as a fixed point).

``mhc_pre`` (:class:`LigerMHCPreFunction`): x_in[c] = sum_i h_pre[i] * x[i, c],
shape (..., C), in float32 rounded to x's dtype;
dx[i, c] = h_pre[i] * g[c] and dh_pre[i] = sum_c g[c] * x[i, c].

``mhc_post_res`` (:class:`LigerMHCPostResFunction`), f_out of shape (..., C):
    x_out[o, c] = sum_i h_res[o, i] * x[i, c] + h_post[o] * f_out[c]
shape (..., HC, C), in float32 rounded to x's dtype; with g its gradient,
dx[i, c] = sum_o h_res[o, i] g[o, c], df[c] = sum_o h_post[o] g[o, c],
dh_post[o] = sum_c g[o, c] f_out[c], dh_res[o, i] = sum_c g[o, c] x[i, c].

The 0.8.5 kernel launchers of this module (``mhc_mm_norm_fwd`` ... ``mhc_post_res_bwd``)
are offered with their signatures and return the same pieces (float32), computed by the
PyTorch reference of these formulas on any device; their block and warp arguments are
accepted and unused. The fast path is the three Functions.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from liger_kernel.ops._contract import (
    DispatchedFunction,
    require_int,
    require_real,
    require_same_device,
    require_shape,
    require_tensor,
)

#: what the coefficient parameters (phi, b, the alphas) and the applied coefficients may be
PARAMETER_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
#: x without ``allow_fp32``
HALF_DTYPES = (torch.bfloat16, torch.float16)


def coefficient_count(hc: int) -> int:
    """M, the routing logits per token for ``hc`` streams: HC pre, HC post, HC*HC residual."""
    return hc * hc + 2 * hc


def streams_of(m: int) -> int:
    """HC for M = HC*HC + 2*HC (ValueError when M is not of that form)."""
    hc = math.isqrt(m + 1) - 1
    if hc < 1 or coefficient_count(hc) != m:
        raise ValueError(f"M = {m} is not HC*HC + 2*HC for any stream count HC")
    return hc


def check_streams(name: str, x: torch.Tensor, dtypes: tuple[torch.dtype, ...]) -> tuple[int, int]:
    """``x`` of shape (..., HC, C) with HC, C >= 1; returns (HC, C)."""
    require_tensor(name, x, dtypes)
    if x.dim() < 3:
        raise ValueError(f"{name} must be (..., HC, C) with at least one leading dimension, got {tuple(x.shape)}")
    hc, c = x.shape[-2], x.shape[-1]
    if hc == 0 or c == 0:
        raise ValueError(f"{name} has shape {tuple(x.shape)}: HC (streams) and C (channels) must be at least 1")
    return hc, c


def _check_scalar_tensor(name: str, value: Any) -> None:
    require_tensor(name, value, PARAMETER_DTYPES)
    if value.numel() != 1:
        raise ValueError(f"{name} must hold exactly one element, got shape {tuple(value.shape)}")


class LigerMHCCoeffsFunction(DispatchedFunction):
    op = "mhc_coeffs"
    backward_reads = ("x", "phi", "b", "alpha_pre", "alpha_post", "alpha_res")

    @staticmethod
    def check(
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
    ) -> None:
        if not isinstance(allow_fp32, bool):
            raise TypeError(f"allow_fp32 must be a bool, got {type(allow_fp32).__name__} {allow_fp32!r}")
        if isinstance(x, torch.Tensor) and x.dtype == torch.float32 and not allow_fp32:
            raise TypeError("x is float32; pass allow_fp32=True to accept it (bfloat16 and float16 need no flag)")
        hc, c = check_streams("x", x, PARAMETER_DTYPES if allow_fp32 else HALF_DTYPES)
        m = coefficient_count(hc)
        require_tensor("phi", phi, PARAMETER_DTYPES)
        require_shape("phi", phi, (hc * c, m), "(HC*C, HC*HC + 2*HC) for x's HC and C")
        require_tensor("b", b, PARAMETER_DTYPES)
        require_shape("b", b, (m,), "(HC*HC + 2*HC,) for x's HC")
        for name, value in (("alpha_pre", alpha_pre), ("alpha_post", alpha_post), ("alpha_res", alpha_res)):
            _check_scalar_tensor(name, value)
        require_int("tmax", tmax)
        if tmax < 1:
            raise ValueError(f"tmax must be >= 1 (Sinkhorn iterations), got {tmax}")
        require_real("rms_eps", rms_eps, minimum=0.0)
        require_real("pre_eps", pre_eps)
        require_real("sinkhorn_eps", sinkhorn_eps, minimum=0.0)
        require_real("post_mult", post_mult)
        require_same_device(
            "x",
            {"x": x, "phi": phi, "b": b, "alpha_pre": alpha_pre, "alpha_post": alpha_post, "alpha_res": alpha_res},
        )

    @staticmethod
    def outputs(x, *_):
        outer, hc = tuple(x.shape[:-2]), x.shape[-2]
        return (
            ((*outer, hc), torch.float32),
            ((*outer, hc), torch.float32),
            ((*outer, hc, hc), torch.float32),
        )


class LigerMHCPreFunction(DispatchedFunction):
    op = "mhc_pre"
    backward_reads = ("x", "h_pre")

    @staticmethod
    def check(x: torch.Tensor, h_pre: torch.Tensor) -> None:
        check_streams("x", x, PARAMETER_DTYPES)
        require_tensor("h_pre", h_pre, PARAMETER_DTYPES)
        require_shape("h_pre", h_pre, tuple(x.shape[:-1]), "x's shape without C: one weight per stream")
        require_same_device("x", {"x": x, "h_pre": h_pre})

    @staticmethod
    def outputs(x, *_):
        return (((*x.shape[:-2], x.shape[-1]), x.dtype),)


class LigerMHCPostResFunction(DispatchedFunction):
    op = "mhc_post_res"
    backward_reads = ("x", "f_out", "h_post", "h_res")

    @staticmethod
    def check(x: torch.Tensor, f_out: torch.Tensor, h_post: torch.Tensor, h_res: torch.Tensor) -> None:
        hc, c = check_streams("x", x, PARAMETER_DTYPES)
        outer = tuple(x.shape[:-2])
        require_tensor("f_out", f_out, PARAMETER_DTYPES)
        require_shape("f_out", f_out, (*outer, c), "x's shape without HC: the layer's output")
        require_tensor("h_post", h_post, PARAMETER_DTYPES)
        require_shape("h_post", h_post, (*outer, hc), "x's shape without C: one weight per stream")
        require_tensor("h_res", h_res, PARAMETER_DTYPES)
        require_shape("h_res", h_res, (*outer, hc, hc), "(..., HC, HC): the stream mixing matrix")
        require_same_device("x", {"x": x, "f_out": f_out, "h_post": h_post, "h_res": h_res})

    @staticmethod
    def outputs(x, *_):
        return ((tuple(x.shape), x.dtype),)


# ---------------------------------------------------------------------------------------------
# 0.8.5's launchers, by the PyTorch reference (float32 pieces of the formulas above)
# ---------------------------------------------------------------------------------------------


def _into(out: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
    """``value``, or written into the caller's output buffer ``out`` (0.8.5's ``out_*`` arguments)."""
    if out is None:
        return value
    if tuple(out.shape) != tuple(value.shape):
        raise ValueError(f"output buffer has shape {tuple(out.shape)}; expected {tuple(value.shape)}")
    return out.copy_(value)


def mhc_mm_norm_fwd(
    x: torch.Tensor,
    phi: torch.Tensor,
    eps: float,
    *,
    out_mix: torch.Tensor | None = None,
    out_invr: torch.Tensor | None = None,
    block_n: int = 32,
    block_k: int = 256,
    block_m: int = 32,
    num_warps: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mix (N, M), invr (N,)), float32, for x of shape (N, K) and phi (K, M)."""
    from liger_kernel.backends.torch.mhc import mm_norm_forward

    mix, invr = mm_norm_forward(x, phi, eps)
    return _into(out_mix, mix), _into(out_invr, invr)


def mhc_mm_norm_bwd(
    x: torch.Tensor,
    phi: torch.Tensor,
    mix: torch.Tensor,
    invr: torch.Tensor,
    grad_mix: torch.Tensor,
    *,
    out_grad_x: torch.Tensor | None = None,
    out_grad_phi: torch.Tensor | None = None,
    block_n: int = 32,
    block_k: int = 256,
    block_m: int = 32,
    num_warps: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_x in x's dtype, grad_phi in phi's dtype) for the gradient ``grad_mix`` of mix."""
    from liger_kernel.backends.torch.mhc import mm_norm_backward

    grad_x, grad_phi = mm_norm_backward(x, phi, mix, invr, grad_mix)
    return _into(out_grad_x, grad_x.to(x.dtype)), _into(out_grad_phi, grad_phi.to(phi.dtype))


def mhc_split_sinkhorn_fwd(
    mix: torch.Tensor,
    b: torch.Tensor,
    alpha_pre: torch.Tensor,
    alpha_post: torch.Tensor,
    alpha_res: torch.Tensor,
    *,
    tmax: int,
    pre_eps: float,
    sinkhorn_eps: float,
    post_mult: float,
    out_hpre: torch.Tensor | None = None,
    out_hpost: torch.Tensor | None = None,
    out_hres: torch.Tensor | None = None,
    out_hist: torch.Tensor | None = None,
    return_hist: bool = False,
    num_warps: int = 1,
) -> tuple[torch.Tensor, ...]:
    """(h_pre, h_post, h_res) from mix (N, M), float32; with ``return_hist`` also
    the Sinkhorn matrices after each of the tmax iterations, (N, tmax, HC, HC)."""
    from liger_kernel.backends.torch.mhc import split_sinkhorn_forward

    streams_of(mix.shape[-1])
    h_pre, h_post, h_res, hist = split_sinkhorn_forward(
        mix, b, alpha_pre, alpha_post, alpha_res, int(tmax), float(pre_eps), float(sinkhorn_eps), float(post_mult)
    )
    results = (_into(out_hpre, h_pre), _into(out_hpost, h_post), _into(out_hres, h_res))
    return (*results, _into(out_hist, hist)) if return_hist else results


def mhc_sinkhorn_bwd(
    mix: torch.Tensor,
    b: torch.Tensor,
    alpha_res: torch.Tensor,
    grad_hres: torch.Tensor,
    *,
    tmax: int,
    sinkhorn_eps: float,
    hist: torch.Tensor | None = None,
    out_grad_logits: torch.Tensor | None = None,
    num_warps: int = 1,
) -> torch.Tensor:
    """The gradient (N, HC, HC) of the residual logits L for the gradient
    ``grad_hres`` of h_res (``hist``, when given, is the forward's history and
    saves recomputing it)."""
    from liger_kernel.backends.torch.mhc import residual_logits, sinkhorn_backward, sinkhorn_history

    hc = streams_of(mix.shape[-1])
    logits = residual_logits(mix, b, alpha_res, hc)
    if hist is None:
        hist = sinkhorn_history(logits, int(tmax), float(sinkhorn_eps))
    return _into(out_grad_logits, sinkhorn_backward(logits, hist, grad_hres.float(), float(sinkhorn_eps)))


def mhc_pre_fwd(
    x: torch.Tensor,
    h_pre: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
    block_n: int = 32,
    block_c: int = 128,
    num_warps: int = 4,
) -> torch.Tensor:
    """x_in (N, C), float32, for x (N, HC, C) and h_pre (N, HC)."""
    from liger_kernel.backends.torch.mhc import pre_forward

    return _into(out, pre_forward(x, h_pre))


def mhc_pre_bwd(
    x: torch.Tensor,
    h_pre: torch.Tensor,
    grad_out: torch.Tensor,
    *,
    out_grad_x: torch.Tensor | None = None,
    out_grad_h: torch.Tensor | None = None,
    block_n: int = 32,
    block_c: int = 128,
    num_warps: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_x (N, HC, C), grad_h_pre (N, HC)), float32."""
    from liger_kernel.backends.torch.mhc import pre_backward

    grad_x, grad_h = pre_backward(x, h_pre, grad_out)
    return _into(out_grad_x, grad_x), _into(out_grad_h, grad_h)


def mhc_post_res_fwd(
    x: torch.Tensor,
    f_out: torch.Tensor,
    h_post: torch.Tensor,
    h_res: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
    block_n: int | None = None,
    block_c: int | None = None,
    num_warps: int | None = None,
    num_stages: int | None = None,
) -> torch.Tensor:
    """x_out (N, HC, C), float32."""
    from liger_kernel.backends.torch.mhc import post_res_forward

    return _into(out, post_res_forward(x, f_out, h_post, h_res))


def mhc_post_res_bwd(
    x: torch.Tensor,
    f_out: torch.Tensor,
    h_post: torch.Tensor,
    h_res: torch.Tensor,
    grad_out: torch.Tensor,
    *,
    out_grad_x: torch.Tensor | None = None,
    out_grad_f: torch.Tensor | None = None,
    out_grad_hpost: torch.Tensor | None = None,
    out_grad_hres: torch.Tensor | None = None,
    block_n: int | None = None,
    block_c: int | None = None,
    num_warps: int | None = None,
    num_stages: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_x, grad_f, grad_h_post, grad_h_res), float32."""
    from liger_kernel.backends.torch.mhc import post_res_backward

    grads = post_res_backward(x, f_out, h_post, h_res, grad_out)
    outs = (out_grad_x, out_grad_f, out_grad_hpost, out_grad_hres)
    return tuple(_into(o, g) for o, g in zip(outs, grads))  # type: ignore[return-value]
