"""Multi-token attention kernels against a float64 formula of the contract,
with rows in one block and walked in blocks (the profile fixture)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from liger_kernel.triton.multi_token_attention import MultiTokenAttentionFunction


def sparsemax(z: torch.Tensor) -> torch.Tensor:
    ordered = z.sort(dim=-1, descending=True).values
    cumulative = ordered.cumsum(-1)
    ranks = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    size = ((1 + ranks * ordered > cumulative) * ranks).amax(-1, keepdim=True)
    tau = (cumulative.gather(-1, size.long() - 1) - 1) / size
    support = (z > tau).detach()
    tau = ((z * support).sum(-1, keepdim=True) - 1) / support.sum(-1, keepdim=True)
    return (z - tau) * support


def reference(scores, weight, bias, stride, padding, dilation, groups, sparse):
    length = scores.shape[-1]
    future = ~torch.ones(length, length, dtype=torch.bool).tril()
    masked = scores.masked_fill(future, float("-inf"))
    probs = sparsemax(masked.masked_fill(future, -1e30)) if sparse else masked.softmax(-1)
    out = F.conv2d(probs, weight, bias, stride, padding, dilation, groups)
    return out.masked_fill(~torch.ones(out.shape[-1], out.shape[-1], dtype=torch.bool).tril(), 0.0)


#: (batch, channels, L, out_channels, kernel, stride, padding, dilation, groups)
GEOMETRIES = [
    (2, 2, 20, 2, 3, 1, 1, 1, 1),
    (1, 4, 21, 2, 3, 1, 2, 2, 2),
    (1, 2, 18, 3, 2, 2, 0, 1, 1),
    (1, 2, 17, 2, (3, 1), 1, (1, 0), 1, 1),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("sparse", [False, True], ids=["softmax", "sparsemax"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "x".join(map(str, g[:3])) + f"-k{g[4]}-s{g[5]}")
def test_matches_float64(profile, assert_close, dtype, sparse, geometry):
    batch, channels, length, out_channels, kernel, stride, padding, dilation, groups = geometry
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    torch.manual_seed(0)
    scores = torch.randn(batch, channels, length, length).to(dtype)
    weight = (torch.randn(out_channels, channels // groups, kh, kw) * 0.5).to(dtype)
    bias = torch.randn(out_channels).to(dtype)
    leaves = [t.clone().requires_grad_() for t in (scores, weight, bias)]
    out = MultiTokenAttentionFunction.apply(*leaves, stride, padding, dilation, groups, sparse)
    grad = torch.randn(out.shape).to(dtype)
    out.backward(grad)
    leaves64 = [t.double().requires_grad_() for t in (scores, weight, bias)]
    expected = reference(*leaves64, stride, padding, dilation, groups, sparse)
    expected.backward(grad.double())
    assert out.dtype == dtype and out.shape == expected.shape
    assert_close(out, expected, dtype, scale=4)
    for leaf, leaf64 in zip(leaves, leaves64):
        assert_close(leaf.grad, leaf64.grad, dtype, scale=8 * length)


def test_no_bias_and_scores_only_gradient(profile, assert_close):
    torch.manual_seed(1)
    scores = torch.randn(1, 2, 19, 19, requires_grad=True)
    weight = torch.randn(2, 2, 3, 3)
    out = MultiTokenAttentionFunction.apply(scores, weight, None, 1, 1, 1, 1, False)
    out.sum().backward()
    scores64 = scores.detach().double().requires_grad_()
    reference(scores64, weight.double(), None, 1, 1, 1, 1, False).sum().backward()
    assert_close(scores.grad, scores64.grad, torch.float32, scale=10)
