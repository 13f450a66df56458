"""Embedding kernels on what the contract cannot check off the CPU: indices out
of range (a NaN row, nothing read or written out of bounds), and widths walked
in several blocks."""

from __future__ import annotations

import torch

from liger_kernel.triton.embedding import EmbeddingFunction


def test_out_of_range_indices_give_nan_rows_and_add_nothing(profile):
    table = torch.randn(6, 20)
    leaf = table.clone().requires_grad_()
    indices = torch.tensor([0, 6, -1, 3, 100, 3])
    y = EmbeddingFunction.apply(leaf, indices, None)
    bad = torch.tensor([False, True, True, False, True, False])
    assert torch.isnan(y[bad]).all()
    torch.testing.assert_close(y[~bad], table[indices[~bad]], rtol=0, atol=0)
    y.backward(torch.ones_like(y))
    expected = torch.zeros(6, 20)
    expected[0] = 1
    expected[3] = 2
    assert torch.equal(leaf.grad, expected)


def test_rows_wider_than_one_block(profile):
    """A width above the profile's widest block is walked block by block."""
    torch.manual_seed(0)
    width = profile.max_block * 2 + 5
    table = torch.randn(3, width).requires_grad_()
    indices = torch.tensor([[2, 0], [2, 1]])
    y = EmbeddingFunction.apply(table, indices, 1)
    assert torch.equal(y, table.detach()[indices])
    dy = torch.randn_like(y)
    y.backward(dy)
    expected = torch.zeros(3, width)
    expected[2] = dy[0, 0] + dy[1, 0]
    expected[0] = dy[0, 1]  # row 1 is the padding row
    torch.testing.assert_close(table.grad, expected)
