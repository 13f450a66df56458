"""Selected-token log-softmax in pure PyTorch (math: :mod:`liger_kernel.ops.grpo_loss`).

The vocabulary passes of :class:`liger_kernel.losses.SelectedLogProbKernels`, a
chunk of one row's positions at a time (at most CHUNK_ELEMENTS logits in the
compute dtype), so no (B, L, V) temporary exists; the GRPO loss runs on the
same passes (:mod:`liger_kernel.backends.torch.grpo_loss`).
"""

from __future__ import annotations

import torch

from liger_kernel.backends.torch.cross_entropy import row_chunks
from liger_kernel.losses import selective_log_softmax_function
from liger_kernel.ops.grpo_loss import loss_dtype


class TorchSelectedLogProb:
    """:class:`liger_kernel.losses.SelectedLogProbKernels` in PyTorch."""

    @staticmethod
    def forward(
        logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor | None, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, positions, vocab = logits.shape
        length = positions - 1
        dtype = loss_dtype(logits)
        logp = torch.zeros((batch, length), dtype=dtype, device=logits.device)
        lse = torch.zeros_like(logp)
        for b in range(batch):
            for rows in row_chunks(length, vocab):
                x = logits[b, rows].to(dtype) / temperature
                row_lse = torch.logsumexp(x, dim=-1)
                token = ids[b, rows].long()
                valid = (token >= 0) & (token < vocab)
                picked = x.gather(1, torch.where(valid, token, 0).unsqueeze(1)).squeeze(1)
                row_logp = torch.where(valid, picked - row_lse, torch.nan)
                if mask is not None:
                    kept = mask[b, rows] != 0
                    row_logp, row_lse = torch.where(kept, row_logp, 0.0), torch.where(kept, row_lse, 0.0)
                logp[b, rows], lse[b, rows] = row_logp, row_lse
        return logp, lse

    @staticmethod
    def backward(
        logits: torch.Tensor,
        grad: torch.Tensor,
        ids: torch.Tensor,
        lse: torch.Tensor,
        scale: torch.Tensor,
        temperature: float,
    ) -> None:
        batch, positions, vocab = logits.shape
        length = positions - 1
        for b in range(batch):
            for rows in row_chunks(length, vocab):
                row_scale = scale[b, rows].unsqueeze(1)
                p = torch.exp(logits[b, rows].to(lse.dtype) / temperature - lse[b, rows].unsqueeze(1))
                row_grad = -p * row_scale
                token = ids[b, rows].long()
                valid = (token >= 0) & (token < vocab)
                at_token = torch.where(valid, row_scale.squeeze(1), torch.nan).unsqueeze(1)
                row_grad.scatter_add_(1, torch.where(valid, token, 0).unsqueeze(1), at_token)
                # rows without a gradient are zeros, whatever their logits hold
                grad[b, rows] = torch.where(row_scale != 0, row_grad, 0.0).to(grad.dtype)
        grad[:, length].zero_()


SelectiveLogSoftmaxFunction = selective_log_softmax_function(TorchSelectedLogProb, "SelectiveLogSoftmaxFunction")
