"""The vocabulary-shard passes in pure PyTorch (math: :mod:`liger_kernel.vocab_shards`),
walked in row chunks of at most CHUNK_ELEMENTS float32 values each, so no
float32 copy of the whole shard is made."""

from __future__ import annotations

import torch

from liger_kernel.backends.torch.cross_entropy import chunk_rows, row_chunks
from liger_kernel.vocab_shards import MAX, SHIFTED, SUM, SUM_EXP, TARGET


def _local_target(target: torch.Tensor, vocab_start: int, shard: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(the target's column in the shard, clamped into it; whether the shard holds it)."""
    local = target.to(torch.int64) - vocab_start
    owned = (local >= 0) & (local < shard)
    return local.clamp(0, shard - 1), owned


class TorchShardKernels:
    """:class:`liger_kernel.vocab_shards.ShardKernels` in PyTorch."""

    @staticmethod
    def stats(logits, target, vocab_start, classes, ignore_index, scale, out, want_sum, want_entropy) -> None:
        shard = logits.shape[1]
        for rows in row_chunks(logits.shape[0], shard):
            z = logits[rows].to(out.dtype) * scale
            row_max = z.amax(dim=1)
            shifted = z - row_max.unsqueeze(1)
            exp = torch.exp(shifted)
            t = target[rows]
            column, owned = _local_target(t, vocab_start, shard)
            target_logit = torch.where(owned, z.gather(1, column.unsqueeze(1)).squeeze(1), 0.0)
            bad = (t != ignore_index) & ((t < 0) | (t >= classes))
            ignored = t == ignore_index
            chunk = out[rows]
            chunk[:, MAX] = torch.where(ignored, 0.0, row_max)
            chunk[:, SUM_EXP] = torch.where(ignored, 1.0, exp.sum(dim=1))
            chunk[:, TARGET] = torch.where(ignored, 0.0, torch.where(bad, float("nan"), target_logit))
            chunk[:, SUM] = torch.where(ignored, 0.0, z.sum(dim=1)) if want_sum else 0.0
            chunk[:, SHIFTED] = torch.where(ignored, 0.0, (exp * shifted).sum(dim=1)) if want_entropy else 0.0

    @staticmethod
    def grad(logits, out, target, vocab_start, ignore_index, scale, coefficients) -> None:
        shard = logits.shape[1]
        for rows in row_chunks(logits.shape[0], shard):
            z = logits[rows].to(coefficients.dtype) * scale
            lse, a, e, u, t_c = (c.unsqueeze(1) for c in coefficients[rows].unbind(dim=1))
            grad = torch.exp(z - lse) * (a - e * z) - u
            t = target[rows]
            column, owned = _local_target(t, vocab_start, shard)
            grad.scatter_add_(1, column.unsqueeze(1), torch.where(owned.unsqueeze(1), -t_c, 0.0))
            grad = torch.where((t == ignore_index).unsqueeze(1), 0.0, grad * scale)
            out[rows] = grad.to(out.dtype)

    @staticmethod
    def chunk_rows(n_rows: int, hidden: int, vocab: int, device: torch.device) -> int:
        return chunk_rows(vocab)
