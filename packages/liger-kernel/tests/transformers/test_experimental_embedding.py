"""LigerEmbedding against torch.nn.Embedding from the same weights."""

from __future__ import annotations

import pytest
import torch

from liger_kernel.transformers.experimental import LigerEmbedding


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_matches_torch_embedding(padding_idx):
    torch.manual_seed(0)
    ours = LigerEmbedding(11, 6, padding_idx=padding_idx)
    stock = torch.nn.Embedding(11, 6, padding_idx=padding_idx)
    if padding_idx is not None:
        assert torch.count_nonzero(ours.weight[padding_idx]) == 0
    with torch.no_grad():
        stock.weight.copy_(ours.weight)
    ids = torch.tensor([[2, 10, 4], [4, 4, 0]])
    y, expected = ours(ids), stock(ids)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    dy = torch.randn_like(y)
    y.backward(dy), expected.backward(dy)
    torch.testing.assert_close(ours.weight.grad, stock.weight.grad)
    assert ours.padding_idx == stock.padding_idx


def test_refuses_a_padding_index_outside_the_table():
    with pytest.raises(ValueError, match="padding_idx 11 is out of range"):
        LigerEmbedding(11, 6, padding_idx=11)
