"""Embedding lookup, portable Triton kernels (math: :mod:`liger_kernel.ops.experimental.embedding`).

Both kernels walk the lookups as rows: a persistent grid of programs, each
taking every ``num_programs``-th row and moving its D values in blocks of
``BLOCK``. Forward copies table row I[p] to output row p (one read and one
write of y's size: the lower bound for a gather). Backward adds dy row p into
row I[p] of an fp32 accumulator (fp64 for fp64 tables) with atomic adds, so the
rows of one index may arrive in any order: the sum is exact up to fp32
rounding, not bitwise reproducible from run to run. The accumulator is the
gradient itself for fp32 and fp64 tables, and one extra table-sized fp32 buffer
for 16-bit ones.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.ops.experimental.embedding import normalized_padding_idx
from liger_kernel.triton.launch import launch, row_block, statistics_dtype


@triton.jit
def _embedding_forward_kernel(E, I, Y, n_rows, n_embeddings, width, BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    for row in tl.range(pid, n_rows, tl.num_programs(0)):
        index = tl.load(I + row).to(tl.int64)
        out = Y + row * width
        if (index >= 0) & (index < n_embeddings):
            for start in tl.range(0, width, BLOCK):
                cols = start + lanes
                mask = cols < width
                tl.store(out + cols, tl.load(E + index * width + cols, mask=mask), mask=mask)
        else:  # an index the contract could not check: a NaN row, nothing read
            for start in tl.range(0, width, BLOCK):
                cols = start + lanes
                tl.store(
                    out + cols, tl.full((BLOCK,), float("nan"), tl.float32).to(Y.dtype.element_ty), mask=cols < width
                )


@triton.jit
def _embedding_backward_kernel(DY, I, DE, n_rows, n_embeddings, width, padding_idx, BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    for row in tl.range(pid, n_rows, tl.num_programs(0)):
        index = tl.load(I + row).to(tl.int64)
        # out-of-range and padding rows add nothing (padding_idx is -1 for none)
        if (index >= 0) & (index < n_embeddings) & (index != padding_idx):
            for start in tl.range(0, width, BLOCK):
                cols = start + lanes
                mask = cols < width
                dy = tl.load(DY + row * width + cols, mask=mask, other=0.0).to(DE.dtype.element_ty)
                tl.atomic_add(DE + index * width + cols, dy, mask=mask, sem="relaxed")


class EmbeddingFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, embeddings: torch.Tensor, indices: torch.Tensor, padding_idx: int | None = None):
        table = embeddings.contiguous()
        flat = indices.reshape(-1).contiguous()
        n_embeddings, width = table.shape
        y = torch.empty((flat.numel(), width), dtype=table.dtype, device=table.device)
        ctx.save_for_backward(flat)
        ctx.table = (table.shape, table.dtype)
        ctx.padding_idx = normalized_padding_idx(padding_idx, n_embeddings)
        if flat.numel() and width:
            profile = device_profile(table.device)
            block = row_block(width, profile)
            launch(profile, _embedding_forward_kernel, profile.grid(flat.numel()), table, flat, y,
                   flat.numel(), n_embeddings, width, BLOCK=block, num_warps=profile.num_warps(block))  # fmt: skip
        return y.view(*indices.shape, width)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor):
        (flat,) = ctx.saved_tensors
        (n_embeddings, width), dtype = ctx.table
        accumulator = torch.zeros((n_embeddings, width), dtype=statistics_dtype(dtype), device=dy.device)
        if flat.numel() and width:
            rows = dy.reshape(-1, width).contiguous()
            profile = device_profile(dy.device)
            block = row_block(width, profile)
            padding = -1 if ctx.padding_idx is None else ctx.padding_idx
            launch(profile, _embedding_backward_kernel, profile.grid(flat.numel()), rows, flat, accumulator,
                   flat.numel(), n_embeddings, width, padding, BLOCK=block,
                   num_warps=profile.num_warps(block))  # fmt: skip
        return accumulator.to(dtype), None, None
