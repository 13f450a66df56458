"""Embedding lookup, ``torch.nn.functional.embedding`` without max_norm.

Forward, for a table E (V, D) and indices I of any shape:
    y[p, :] = E[I[p], :]        y has shape I.shape + (D,) and E's dtype
Backward (indices get no gradient):
    dE[v, :] = sum over the positions p with I[p] == v of dy[p, :]
accumulated in fp32 (fp64 for fp64 tables), stored in E's dtype; with
``padding_idx`` (in [-V, V), negative counted from the end, as nn.Embedding)
that row's gradient is 0, while its forward rows are E[padding_idx] as stored.

An index outside [0, V) is an error (IndexError, see
:func:`liger_kernel.ops._contract.require_indices_in_range` for where it is
checked); where it is not checked a kernel never reads out of bounds: its output
row is NaN and it adds nothing to dE.

0.8.5's ``embedding_forward_kernel`` / ``embedding_backward_kernel`` are its raw
Triton launches; here each Triton backend launches its own
(:mod:`liger_kernel.triton.embedding`).
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import (
    INDEX_DTYPES,
    DispatchedFunction,
    require_indices_in_range,
    require_int,
    require_ndim,
    require_same_device,
    require_tensor,
)


def normalized_padding_idx(padding_idx: int | None, num_embeddings: int) -> int | None:
    """``padding_idx`` as a row of the table (negative counts from the end), None
    for none; raises ValueError outside [-V, V)."""
    if padding_idx is None:
        return None
    require_int("padding_idx", padding_idx)
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(
            f"padding_idx {padding_idx} is out of range for {num_embeddings} embeddings: "
            f"it must be in [-{num_embeddings}, {num_embeddings})"
        )
    return padding_idx % num_embeddings


class LigerEmbeddingFunction(DispatchedFunction):
    op = "embedding"
    backward_reads = ("indices",)

    @staticmethod
    def outputs(embeddings, indices, padding_idx=None):
        return (((*indices.shape, embeddings.shape[1]), embeddings.dtype),)

    @staticmethod
    def check(embeddings: torch.Tensor, indices: torch.Tensor, padding_idx: int | None = None) -> None:
        require_tensor("embeddings", embeddings)
        require_ndim("embeddings", embeddings, (2,))
        require_tensor("indices", indices, INDEX_DTYPES)
        require_same_device("embeddings", {"embeddings": embeddings, "indices": indices})
        normalized_padding_idx(padding_idx, embeddings.shape[0])
        require_indices_in_range(
            "indices", indices, embeddings.shape[0], f"an index into the {embeddings.shape[0]} rows of embeddings"
        )
