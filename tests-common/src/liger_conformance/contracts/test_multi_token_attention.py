"""LigerMultiTokenAttentionFunction against the float64 oracle (see liger_kernel.ops.multi_token_attention)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise
from liger_kernel.ops import LigerMultiTokenAttentionFunction

pytestmark = pytest.mark.liger_op("multi_token_attention")

#: a score no softmax or sparsemax support reaches, finite so that the
#: oracle's gradient through the masked entries is 0 rather than NaN
MASKED = -1.0e30


def sparsemax_rows(z: torch.Tensor) -> torch.Tensor:
    """max(z - tau, 0) over the last dimension, tau from the sorted values,
    written as (z - tau(S)) on the support S held fixed, so that autograd
    yields sparsemax's Jacobian."""
    ordered = z.sort(dim=-1, descending=True).values
    cumulative = ordered.cumsum(dim=-1)
    ranks = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype, device=z.device)
    size = ((1 + ranks * ordered > cumulative) * ranks).amax(dim=-1, keepdim=True)
    tau = (cumulative.gather(-1, size.long() - 1) - 1) / size
    support = (z > tau).detach()
    tau = ((z * support).sum(dim=-1, keepdim=True) - 1) / support.sum(dim=-1, keepdim=True)
    return (z - tau) * support


def lower_triangle(length: int, device: torch.device) -> torch.Tensor:
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def mta_oracle(scores, weight, bias, stride, padding, dilation, groups, sparse):
    """out = mask_0(conv2d(P)), P the softmax (sparsemax) of the causally masked rows."""
    masked = scores.masked_fill(~lower_triangle(scores.shape[-1], scores.device), MASKED)
    probs = sparsemax_rows(masked) if sparse else torch.softmax(masked, dim=-1)
    out = F.conv2d(probs, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
    return out * lower_triangle(out.shape[-1], out.device)


#: (batch, channels, L, out_channels, (KH, KW), stride, padding, dilation, groups)
GEOMETRIES = by_size(
    small=[
        (1, 2, 6, 2, (3, 3), 1, 1, 1, 1),
        (1, 4, 7, 2, (3, 3), 1, 2, 2, 2),
        (1, 2, 1, 2, (1, 1), 1, 0, 1, 1),
        (1, 2, 8, 2, (2, 1), 2, 0, 1, 2),
    ],
    full=[
        (2, 8, 128, 8, (5, 5), 1, 2, 1, 1),
        (2, 16, 257, 16, (3, 3), 1, 2, 2, 4),
        (1, 8, 1030, 8, (3, 3), 1, 1, 1, 8),
        (2, 4, 64, 4, (2, 2), 2, 0, 1, 1),
    ],
)


def geometry_id(geometry) -> str:
    batch, channels, length, out_channels, (kh, kw), stride, padding, dilation, groups = geometry
    return f"{batch}x{channels}x{length}-o{out_channels}-k{kh}x{kw}-s{stride}-p{padding}-d{dilation}-g{groups}"


def run(geometry, sparse, *, dtype, device, rng, bias=True, layout="contiguous"):
    batch, channels, length, out_channels, kernel, stride, padding, dilation, groups = geometry
    args = {
        "scores": make((batch, channels, length, length), dtype, device, rng, layout=layout),
        "weight": make((out_channels, channels // groups, *kernel), dtype, device, rng, scale=0.5),
        "bias": make((out_channels,), dtype, device, rng) if bias else None,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
        "sparse": sparse,
    }
    return compare_with_oracle(
        LigerMultiTokenAttentionFunction.apply,
        lambda a: mta_oracle(*a.values()),
        args,
        dtype=dtype,
        rng=rng,
        grads=("scores", "weight", "bias") if bias else ("scores", "weight"),
        reduced=("weight", "bias"),
        outputs=("out",),
    )


@pytest.mark.parametrize("sparse", [False, True], ids=["softmax", "sparsemax"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, geometry, sparse):
    run(geometry, sparse, dtype=liger_dtype, device=liger_device, rng=liger_rng)


@pytest.mark.parametrize("sparse", [False, True], ids=["softmax", "sparsemax"])
def test_without_bias(liger_device, liger_dtype, liger_rng, sparse):
    run((1, 2, 5, 2, (3, 3), 1, 1, 1, 1), sparse, dtype=liger_dtype, device=liger_device, rng=liger_rng, bias=False)


def test_non_contiguous_scores(liger_device, liger_dtype, liger_rng):
    run(
        (1, 2, 8, 2, (3, 3), 1, 1, 1, 1), False, dtype=liger_dtype, device=liger_device, rng=liger_rng, layout="strided"
    )


def test_output_is_causal(liger_device, liger_dtype, liger_rng):
    """Entries above the diagonal are exactly 0, whatever the bias; a future
    score has no effect on any output and gets a zero gradient."""
    scores = make((1, 2, 5, 5), liger_dtype, liger_device, liger_rng).requires_grad_()
    weight = make((2, 2, 3, 3), liger_dtype, liger_device, liger_rng)
    bias = torch.full((2,), 5.0, dtype=liger_dtype, device=liger_device)
    out = LigerMultiTokenAttentionFunction.apply(scores, weight, bias, 1, 1, 1, 1, False)
    future = ~lower_triangle(5, liger_device)
    assert bool((out[..., future] == 0).all())
    out.sum().backward()
    assert bool((scores.grad[..., future] == 0).all())
    changed = scores.detach().clone()
    changed[..., future] = 100.0
    assert torch.equal(LigerMultiTokenAttentionFunction.apply(changed, weight, bias, 1, 1, 1, 1, False), out.detach())


def test_deterministic(liger_device, liger_dtype, liger_rng):
    scores = make((1, 2, 5, 5), liger_dtype, liger_device, liger_rng)
    weight = make((2, 2, 3, 3), liger_dtype, liger_device, liger_rng)
    bias = make((2,), liger_dtype, liger_device, liger_rng)
    grad = make((1, 2, 5, 5), liger_dtype, liger_device, liger_rng)

    def once():
        leaves = [t.clone().requires_grad_() for t in (scores, weight, bias)]
        out = LigerMultiTokenAttentionFunction.apply(*leaves, 1, 1, 1, 1, False)
        out.backward(grad)
        return out, *(leaf.grad for leaf in leaves)

    run_twice_bitwise(once, "multi_token_attention")


@pytest.mark.parametrize("case", bad_inputs.cases("multi_token_attention"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
