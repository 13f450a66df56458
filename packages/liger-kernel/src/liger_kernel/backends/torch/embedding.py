"""Embedding lookup in pure PyTorch (math: :mod:`liger_kernel.ops.experimental.embedding`)."""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import compute_dtype
from liger_kernel.ops.experimental.embedding import normalized_padding_idx


class EmbeddingFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, embeddings: torch.Tensor, indices: torch.Tensor, padding_idx: int | None = None):
        flat = indices.reshape(-1)
        ctx.save_for_backward(flat)
        ctx.table = (embeddings.shape, embeddings.dtype)
        ctx.padding_idx = normalized_padding_idx(padding_idx, embeddings.shape[0])
        return embeddings.index_select(0, flat).view(*indices.shape, embeddings.shape[1])

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor):
        (flat,) = ctx.saved_tensors
        shape, dtype = ctx.table
        acc = torch.zeros(shape, dtype=compute_dtype(dy), device=dy.device)
        acc.index_add_(0, flat, dy.reshape(-1, shape[1]).to(acc.dtype))
        if ctx.padding_idx is not None:
            acc[ctx.padding_idx] = 0
        return acc.to(dtype), None, None
