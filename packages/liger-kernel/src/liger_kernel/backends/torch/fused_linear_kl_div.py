"""An LM head and the KL divergence from a target distribution, in pure PyTorch
(math: :mod:`liger_kernel.ops.fused_linear_kl_div`).

The shared chunk walk (:func:`liger_kernel.losses.fused_linear_kl_div_function`)
with a row kernel in torch: per chunk, the target rows are gathered and the
log-softmax, loss and dlogits formed in fp32 (float64 for float64 inputs), so
that the temporaries are a few chunks of values whatever the vocabulary. Chunks
are sized as the torch fused linear JSD's (:func:`chunk_rows`).
"""

from __future__ import annotations

import torch

from liger_kernel.backends.torch.fused_linear_jsd import chunk_rows
from liger_kernel.losses import fused_linear_kl_div_function
from liger_kernel.ops.fused_linear_kl_div import IGNORED_ROW


def kl_rows(
    logits: torch.Tensor,
    rows: torch.Tensor,
    target: torch.Tensor,
    divisor: torch.Tensor,
    loss: torch.Tensor,
    write_grad: bool,
    temperature: float,
    eps: float,
) -> None:
    """The row kernel (:class:`liger_kernel.losses.KLRowLoss`) in torch."""
    math_dtype = divisor.dtype
    kept = rows != IGNORED_ROW
    t = target.index_select(0, rows.clamp(min=0)).to(math_dtype)
    log_s = torch.log_softmax(logits.to(math_dtype) / temperature, dim=-1)
    row_loss = (t * (t.clamp(min=eps).log() - log_s)).sum(dim=-1) / divisor
    loss.copy_(torch.where(kept, row_loss, 0.0))
    if write_grad:
        dlogits = (log_s.exp() * t.sum(dim=-1, keepdim=True) - t) / (divisor * temperature)
        logits.copy_(torch.where(kept.unsqueeze(1), dlogits, 0.0))


FusedLinearKLDivFunction = fused_linear_kl_div_function(
    kl_rows,
    lambda x, weight: chunk_rows(x.shape[0], x.shape[1], weight.shape[0]),
    "FusedLinearKLDivFunction",
)
