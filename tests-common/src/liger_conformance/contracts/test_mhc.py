"""The mHC ops (LigerMHCCoeffsFunction, LigerMHCPreFunction, LigerMHCPostResFunction)
against float64 oracles written from liger_kernel.ops.mhc."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise, shape_id
from liger_conformance.tolerances import assert_close
from liger_kernel.ops import LigerMHCCoeffsFunction, LigerMHCPostResFunction, LigerMHCPreFunction

COEFFS = pytest.mark.liger_op("mhc_coeffs")
PRE = pytest.mark.liger_op("mhc_pre")
POST_RES = pytest.mark.liger_op("mhc_post_res")
FLOAT32_OUTPUTS = {name: (torch.float32,) for name in ("h_pre", "h_post", "h_res")}
#: tmax, rms_eps, pre_eps, sinkhorn_eps, post_mult (0.8.5's defaults)
DEFAULTS = (20, 1e-6, 0.0, 1e-6, 2.0)


def coeffs_oracle(x, phi, b, alpha_pre, alpha_post, alpha_res, tmax, rms_eps, pre_eps, sinkhorn_eps, post_mult):
    hc, c = x.shape[-2:]
    tokens = x.reshape(-1, hc * c)
    invr = torch.rsqrt(tokens.square().mean(-1) + rms_eps)
    mix = (tokens @ phi) * invr[:, None]
    h_pre = torch.sigmoid(alpha_pre.reshape(()) * mix[:, :hc] + b[:hc]) + pre_eps
    h_post = post_mult * torch.sigmoid(alpha_post.reshape(()) * mix[:, hc : 2 * hc] + b[hc : 2 * hc])
    logits = (alpha_res.reshape(()) * mix[:, 2 * hc :] + b[2 * hc :]).reshape(-1, hc, hc)
    a = torch.softmax(logits, -1) + sinkhorn_eps
    a = a / (a.sum(-2, keepdim=True) + sinkhorn_eps)
    for _ in range(tmax - 1):
        a = a / (a.sum(-1, keepdim=True) + sinkhorn_eps)
        a = a / (a.sum(-2, keepdim=True) + sinkhorn_eps)
    outer = x.shape[:-2]
    return h_pre.reshape(*outer, hc), h_post.reshape(*outer, hc), a.reshape(*outer, hc, hc)


def coeffs_inputs(shape, dtype, device, rng, *, phi_dtype=None, layout="contiguous", alphas=(0.8, 1.2, 1.5)):
    hc, c = shape[-2:]
    m = hc * hc + 2 * hc
    phi_dtype = phi_dtype or dtype
    x = make(shape, dtype, device, rng, layout=layout)
    # phi scaled so that the residual logits spread over a few units: a Sinkhorn far from uniform
    phi = make((hc * c, m), phi_dtype, device, rng, scale=(4.0 / (hc * c)) ** 0.5)
    b = make((m,), torch.float32, device, rng, scale=0.5)
    scalars = [torch.tensor(v, dtype=torch.float32, device=device) for v in alphas]
    return {"x": x, "phi": phi, "b": b, "alpha_pre": scalars[0], "alpha_post": scalars[1], "alpha_res": scalars[2]}


def run_coeffs(args, dtype, rng, options=DEFAULTS, grads=("x", "phi", "b", "alpha_pre", "alpha_post", "alpha_res")):
    allow_fp32 = args["x"].dtype == torch.float32
    call = dict(args, allow_fp32=allow_fp32)
    tmax, rms_eps, pre_eps, sinkhorn_eps, post_mult = options
    call.update(tmax=tmax, rms_eps=rms_eps, pre_eps=pre_eps, sinkhorn_eps=sinkhorn_eps, post_mult=post_mult)
    return compare_with_oracle(
        LigerMHCCoeffsFunction.apply,
        lambda a: coeffs_oracle(*(a[k] for k in args), *options),
        call,
        dtype=dtype,
        rng=rng,
        grads=grads,
        outputs=("h_pre", "h_post", "h_res"),
        reduced=("phi", "b", "alpha_pre", "alpha_post", "alpha_res"),
        output_dtypes=FLOAT32_OUTPUTS,
    )


COEFF_SHAPES = by_size(
    # (..., HC, C): HC 1, 3 (padded lanes), 4, 12 (two column blocks of M); K above one step
    small=[(1, 4, 8), (2, 3, 3, 8), (5, 1, 24), (2, 4, 70), (3, 12, 4)],
    full=[(1, 4, 8), (2, 3, 3, 8), (4, 512, 4, 1024), (2, 8, 8, 512), (3, 16, 64)],
)


@COEFFS
@pytest.mark.parametrize("shape", COEFF_SHAPES, ids=shape_id)
def test_coeffs_forward_backward(liger_device, liger_dtype, liger_rng, shape):
    run_coeffs(coeffs_inputs(shape, liger_dtype, liger_device, liger_rng), liger_dtype, liger_rng)


@COEFFS
@pytest.mark.parametrize("phi_dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_coeffs_mixed_phi_dtype(liger_device, liger_dtype, liger_rng, phi_dtype):
    """phi of another dtype than x (LigerMHC keeps float16 phi beside bfloat16 streams):
    the products stay exact, phi's gradient comes back in phi's dtype."""
    args = coeffs_inputs((3, 4, 24), liger_dtype, liger_device, liger_rng, phi_dtype=phi_dtype)
    # phi's gradient is rounded to phi's dtype: judged by the coarser of the two
    coarser = next(d for d in (torch.bfloat16, torch.float16, torch.float32) if d in (liger_dtype, phi_dtype))
    run_coeffs(args, coarser, liger_rng)


@COEFFS
@pytest.mark.parametrize(
    "options",
    [(1, 1e-6, 0.0, 1e-6, 2.0), (5, 1e-2, 0.25, 1e-3, 1.0), (20, 0.0, 0.0, 0.0, 2.0)],
    ids=["one-iteration", "eps-and-mult", "no-eps"],
)
def test_coeffs_options(liger_device, liger_dtype, liger_rng, options):
    """HC = 3: the padded Sinkhorn lanes of the kernels stay out of every sum, eps 0 included."""
    run_coeffs(coeffs_inputs((2, 3, 3, 16), liger_dtype, liger_device, liger_rng), liger_dtype, liger_rng, options)


@COEFFS
def test_coeffs_sharp_residual_logits(liger_device, liger_dtype, liger_rng):
    """alpha_res large: row softmaxes near one-hot, Sinkhorn from a nearly permutation matrix."""
    args = coeffs_inputs((4, 4, 16), liger_dtype, liger_device, liger_rng, alphas=(1.0, 1.0, 6.0))
    run_coeffs(args, liger_dtype, liger_rng)


@COEFFS
@pytest.mark.parametrize("used", ["h_res", "h_pre", "h_post"])
def test_coeffs_one_output_used(liger_device, liger_dtype, liger_rng, used):
    """Gradients when the loss reads one coefficient only (the others get no gradient)."""
    args = coeffs_inputs((3, 4, 16), liger_dtype, liger_device, liger_rng)
    leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
    oracle = {k: v.detach().double().requires_grad_() for k, v in args.items()}
    index = ("h_pre", "h_post", "h_res").index(used)
    got = LigerMHCCoeffsFunction.apply(*leaves.values(), args["x"].dtype == torch.float32, *DEFAULTS)[index]
    want = coeffs_oracle(*oracle.values(), *DEFAULTS)[index]
    weights = torch.randn(want.shape, generator=liger_rng, dtype=torch.float64)
    (got.double() * weights.to(got.device)).sum().backward()
    (want * weights).sum().backward()
    for name in args:
        kind = "elementwise" if name == "x" else "reduced"
        # an alpha the used coefficient does not depend on has no oracle gradient: it must be zero
        want_grad = oracle[name].grad if oracle[name].grad is not None else torch.zeros_like(oracle[name])
        assert_close(leaves[name].grad, want_grad, liger_dtype, f"gradient of {name}", kind)


@COEFFS
@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_coeffs_non_contiguous(liger_device, liger_dtype, liger_rng, layout):
    args = coeffs_inputs((2, 3, 4, 10), liger_dtype, liger_device, liger_rng, layout=layout)
    run_coeffs(args, liger_dtype, liger_rng)


@COEFFS
def test_coeffs_no_tokens(liger_device, liger_rng):
    """x of shape (0, HC, C): empty coefficients, zero gradients for phi, b and the alphas."""
    args = {k: v.requires_grad_() for k, v in coeffs_inputs((0, 4, 8), torch.bfloat16, liger_device, liger_rng).items()}
    h_pre, h_post, h_res = LigerMHCCoeffsFunction.apply(*args.values(), False, *DEFAULTS)
    assert tuple(h_pre.shape) == (0, 4) and tuple(h_post.shape) == (0, 4) and tuple(h_res.shape) == (0, 4, 4)
    (h_pre.sum() + h_post.sum() + h_res.sum()).backward()
    assert tuple(args["x"].grad.shape) == (0, 4, 8)
    for name in ("phi", "b", "alpha_pre", "alpha_post", "alpha_res"):
        assert torch.equal(args[name].grad, torch.zeros_like(args[name])), name


@COEFFS
def test_coeffs_deterministic(liger_device, liger_dtype, liger_rng):
    args = coeffs_inputs((37, 4, 24), liger_dtype, liger_device, liger_rng)
    cotangents = [torch.randn(s, generator=liger_rng).to(liger_device) for s in ((37, 4), (37, 4), (37, 4, 4))]

    def once():
        leaves = [v.clone().requires_grad_() for v in args.values()]
        outs = LigerMHCCoeffsFunction.apply(*leaves, liger_dtype == torch.float32, *DEFAULTS)
        torch.autograd.backward(outs, cotangents)
        return (*outs, *(leaf.grad for leaf in leaves))

    run_twice_bitwise(once, "mhc_coeffs")


def pre_oracle(x, h_pre):
    return (x * h_pre[..., None]).sum(-2)


def post_res_oracle(x, f_out, h_post, h_res):
    return h_res @ x + h_post[..., None] * f_out[..., None, :]


APPLY_SHAPES = by_size(
    small=[(1, 4, 8), (2, 3, 3, 40), (5, 1, 24), (3, 4, 300), (2, 2, 16, 5)],
    full=[(1, 4, 8), (4, 1024, 4, 4096), (2, 3, 3, 40), (64, 8, 2049), (2, 16, 100)],
)


def coefficient_tensors(shape, device, rng, dtype=torch.float32):
    """h_pre, h_post (..., HC) and h_res (..., HC, HC) as the coefficient op makes them (float32)."""
    outer, hc = shape[:-2], shape[-2]
    h_pre = make((*outer, hc), dtype, device, rng, scale=0.3, shift=0.5)
    h_post = make((*outer, hc), dtype, device, rng, scale=0.5, shift=1.0)
    h_res = make((*outer, hc, hc), dtype, device, rng, scale=0.3, shift=1.0 / hc)
    return h_pre, h_post, h_res


def run_pre(x, h_pre, dtype, rng):
    return compare_with_oracle(
        LigerMHCPreFunction.apply,
        lambda a: pre_oracle(a["x"], a["h_pre"]),
        {"x": x, "h_pre": h_pre},
        dtype=dtype,
        rng=rng,
        grads=("x", "h_pre"),
        outputs=("x_in",),
        reduced=("h_pre",),
    )


def run_post_res(x, f_out, h_post, h_res, dtype, rng):
    return compare_with_oracle(
        LigerMHCPostResFunction.apply,
        lambda a: post_res_oracle(a["x"], a["f_out"], a["h_post"], a["h_res"]),
        {"x": x, "f_out": f_out, "h_post": h_post, "h_res": h_res},
        dtype=dtype,
        rng=rng,
        grads=("x", "f_out", "h_post", "h_res"),
        outputs=("x_out",),
        reduced=("h_post", "h_res"),
    )


@PRE
@pytest.mark.parametrize("shape", APPLY_SHAPES, ids=shape_id)
def test_pre_forward_backward(liger_device, liger_dtype, liger_rng, shape):
    """float32 coefficients (as mhc_coeffs returns them) beside streams of the tested dtype."""
    x = make(shape, liger_dtype, liger_device, liger_rng)
    h_pre, _, _ = coefficient_tensors(shape, liger_device, liger_rng)
    run_pre(x, h_pre, liger_dtype, liger_rng)


@PRE
@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_pre_non_contiguous_and_same_dtype(liger_device, liger_dtype, liger_rng, layout):
    x = make((3, 4, 33), liger_dtype, liger_device, liger_rng, layout=layout)
    h_pre, _, _ = coefficient_tensors((3, 4, 33), liger_device, liger_rng, liger_dtype)
    run_pre(x, h_pre, liger_dtype, liger_rng)


@POST_RES
@pytest.mark.parametrize("shape", APPLY_SHAPES, ids=shape_id)
def test_post_res_forward_backward(liger_device, liger_dtype, liger_rng, shape):
    x = make(shape, liger_dtype, liger_device, liger_rng)
    f_out = make((*shape[:-2], shape[-1]), liger_dtype, liger_device, liger_rng)
    _, h_post, h_res = coefficient_tensors(shape, liger_device, liger_rng)
    run_post_res(x, f_out, h_post, h_res, liger_dtype, liger_rng)


@POST_RES
@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_post_res_non_contiguous(liger_device, liger_dtype, liger_rng, layout):
    x = make((3, 4, 33), liger_dtype, liger_device, liger_rng, layout=layout)
    f_out = make((3, 33), liger_dtype, liger_device, liger_rng, layout=layout)
    _, h_post, h_res = coefficient_tensors((3, 4, 33), liger_device, liger_rng, liger_dtype)
    run_post_res(x, f_out, h_post, h_res, liger_dtype, liger_rng)


@POST_RES
def test_post_res_float32_layer_output(liger_device, liger_dtype, liger_rng):
    """f_out of another dtype than x: x_out has x's dtype, f_out's gradient f_out's."""
    x = make((4, 4, 24), liger_dtype, liger_device, liger_rng)
    f_out = make((4, 24), torch.float32, liger_device, liger_rng)
    _, h_post, h_res = coefficient_tensors((4, 4, 24), liger_device, liger_rng)
    run_post_res(x, f_out, h_post, h_res, liger_dtype, liger_rng)


@PRE
@POST_RES
def test_apply_deterministic(liger_device, liger_dtype, liger_rng):
    shape = (29, 4, 70)
    x = make(shape, liger_dtype, liger_device, liger_rng)
    f_out = make((29, 70), liger_dtype, liger_device, liger_rng)
    h_pre, h_post, h_res = coefficient_tensors(shape, liger_device, liger_rng)
    g_out = make(shape, liger_dtype, liger_device, liger_rng)
    g_in = make((29, 70), liger_dtype, liger_device, liger_rng)

    def once():
        leaves = [t.clone().requires_grad_() for t in (x, f_out, h_pre, h_post, h_res)]
        x_in = LigerMHCPreFunction.apply(leaves[0], leaves[2])
        x_out = LigerMHCPostResFunction.apply(leaves[0], leaves[1], leaves[3], leaves[4])
        torch.autograd.backward([x_in, x_out], [g_in, g_out])
        return (x_in, x_out, *(leaf.grad for leaf in leaves))

    run_twice_bitwise(once, "mhc_pre / mhc_post_res")


@PRE
@POST_RES
def test_apply_no_tokens(liger_device, liger_rng):
    x = make((0, 4, 8), torch.bfloat16, liger_device, liger_rng).requires_grad_()
    h_pre, h_post, h_res = (t.requires_grad_() for t in coefficient_tensors((0, 4, 8), liger_device, liger_rng))
    f_out = make((0, 8), torch.bfloat16, liger_device, liger_rng).requires_grad_()
    x_in = LigerMHCPreFunction.apply(x, h_pre)
    x_out = LigerMHCPostResFunction.apply(x, f_out, h_post, h_res)
    assert tuple(x_in.shape) == (0, 8) and tuple(x_out.shape) == (0, 4, 8)
    (x_in.float().sum() + x_out.float().sum()).backward()
    assert tuple(x.grad.shape) == (0, 4, 8) and tuple(h_res.grad.shape) == (0, 4, 4)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.liger_op(c.op))
        for op in ("mhc_coeffs", "mhc_pre", "mhc_post_res")
        for c in bad_inputs.cases(op)
    ],
    ids=bad_inputs.case_id,
)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
