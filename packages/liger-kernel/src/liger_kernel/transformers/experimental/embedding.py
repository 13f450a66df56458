"""``torch.nn.Embedding`` over :class:`liger_kernel.ops.experimental.embedding.LigerEmbeddingFunction`."""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops.experimental.embedding import LigerEmbeddingFunction, normalized_padding_idx


class LigerEmbedding(nn.Module):
    """A table of ``num_embeddings`` rows of width ``embedding_dim``, looked up by index.

    Initialized as ``torch.nn.Embedding`` is (N(0, 1), the ``padding_idx`` row
    zeros); that row never gets a gradient.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = normalized_padding_idx(padding_idx, num_embeddings)
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.normal_()
            if self.padding_idx is not None:
                self.weight[self.padding_idx].zero_()

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return LigerEmbeddingFunction.apply(self.weight, indices, self.padding_idx)

    def extra_repr(self) -> str:
        padding = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"
