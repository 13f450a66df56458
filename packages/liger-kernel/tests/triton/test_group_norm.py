"""GroupNorm kernels against torch's group_norm in float64 (one-tile and walked rows)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from liger_kernel.triton.group_norm import GroupNormFunction, tile_shape

EPS = 1e-5


def leaf(t: torch.Tensor | None, grad: bool = True) -> torch.Tensor | None:
    return None if t is None else t.detach().clone().requires_grad_(grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    ("shape", "groups"),
    [((3, 6, 5, 4), 3), ((2, 40), 2), ((2, 4, 33), 1), ((2, 8, 3), 8), ((1, 300, 1), 3)],
)
def test_group_norm_matches_float64(profile, assert_close, dtype, shape, groups):
    torch.manual_seed(0)
    channels = shape[1]
    # a shifted input checks that the variance is taken about the mean
    x = torch.randn(shape, dtype=dtype) + 2
    w, b = torch.randn(channels, dtype=dtype), torch.randn(channels, dtype=dtype)
    dy = torch.randn(shape, dtype=dtype)
    xk, wk, bk = leaf(x), leaf(w), leaf(b)
    y = GroupNormFunction.apply(xk, wk, bk, channels, groups, EPS)
    y.backward(dy)
    x64, w64, b64 = leaf(x.double()), leaf(w.double()), leaf(b.double())
    y64 = F.group_norm(x64, groups, w64, b64, EPS)
    y64.backward(dy.double())
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, y64, dtype, scale=2)
    assert_close(xk.grad, x64.grad, dtype, scale=4)
    assert_close(wk.grad, w64.grad, dtype, scale=8)
    assert_close(bk.grad, b64.grad, dtype, scale=8)


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, True), (False, False, True)])
def test_group_norm_grad_subsets_and_strided_input(profile, assert_close, needs):
    torch.manual_seed(1)
    x = torch.randn(2, 6, 9).transpose(1, 2).contiguous().transpose(1, 2)  # channels innermost in memory
    w, b = torch.randn(6), torch.randn(6)
    dy = torch.randn(2, 6, 9)
    xk, wk, bk = (leaf(t, n) for t, n in zip((x, w, b), needs))
    GroupNormFunction.apply(xk, wk, bk, 6, 2, EPS).backward(dy)
    x64, w64, b64 = (leaf(t.double(), n) for t, n in zip((x, w, b), needs))
    F.group_norm(x64, 2, w64, b64, EPS).backward(dy.double())
    for got, want, needed in zip((xk, wk, bk), (x64, w64, b64), needs):
        if needed:
            assert_close(got.grad, want.grad, torch.float32, scale=4)
        else:
            assert got.grad is None


def test_tiles_fill_the_block_along_positions_then_channels(profile):
    block = profile.max_block
    assert tile_shape(profile, 4, 1) == (4, 1)
    c, s = tile_shape(profile, 1000, 1)
    assert s == 1 and c * s <= block // 2  # walked: half-size tiles
    c, s = tile_shape(profile, 3, block * 4)
    assert c == 1 and s == block // 2
