"""Total variation distance over the last dimension, in pure PyTorch
(math: :mod:`liger_kernel.ops.tvd`).

The divisor stays a device tensor (no host synchronization), and rows are
processed in chunks of at most CHUNK_ELEMENTS values.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import as_rows
from liger_kernel.backends.torch.kl_div import row_chunks
from liger_kernel.ops.kl_div import loss_dtype
from liger_kernel.ops.tvd import reduction_divisor


def kept_rows(shift_labels: torch.Tensor | None, ignore_index: int) -> torch.Tensor | None:
    """One bool per row (None: every row is kept)."""
    return None if shift_labels is None else shift_labels.reshape(-1) != ignore_index


class TVDFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        p: torch.Tensor,
        q: torch.Tensor,
        shift_labels: torch.Tensor | None = None,
        reduction: str = "batchmean",
        ignore_index: int = -100,
    ) -> torch.Tensor:
        math_dtype = loss_dtype(p.dtype, q.dtype)
        p_rows, q_rows = as_rows(p), as_rows(q)
        n_rows, width = p_rows.shape
        kept = kept_rows(shift_labels, ignore_index)
        per_element = torch.empty((n_rows, width), dtype=math_dtype, device=p.device) if reduction == "none" else None
        total = torch.zeros((), dtype=math_dtype, device=p.device)
        for rows in row_chunks(n_rows, width):
            loss = 0.5 * (p_rows[rows].to(math_dtype) - q_rows[rows].to(math_dtype)).abs()
            if kept is not None:
                # where, not a product: an ignored row is never read, as in the kernels (nan stays out)
                loss = torch.where(kept[rows].unsqueeze(1), loss, 0.0)
            if per_element is not None:
                per_element[rows] = loss
            else:
                total += loss.sum()
        scale = reduction_divisor(shift_labels, ignore_index, n_rows, width, reduction, math_dtype, p.device)
        ctx.save_for_backward(p, q, kept, scale)
        ctx.elementwise = per_element is not None
        if per_element is not None:
            return per_element.view(p.shape)
        return total / scale

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[Any, ...]:
        p, q, kept, scale = ctx.saved_tensors
        need_p, need_q = ctx.needs_input_grad[:2]
        if not (need_p or need_q):
            return None, None, None, None, None
        math_dtype = scale.dtype
        p_rows, q_rows = as_rows(p), as_rows(q)
        n_rows, width = p_rows.shape
        grad_rows = as_rows(grad_loss) if ctx.elementwise else None
        half_scaled = None if grad_rows is not None else 0.5 * grad_loss.to(math_dtype) / scale
        d_p = torch.empty((n_rows, width), dtype=p.dtype, device=p.device) if need_p else None
        d_q = torch.empty((n_rows, width), dtype=q.dtype, device=q.device) if need_q else None
        for rows in row_chunks(n_rows, width):
            factor = 0.5 * grad_rows[rows].to(math_dtype) if grad_rows is not None else half_scaled
            grad = torch.sign(p_rows[rows].to(math_dtype) - q_rows[rows].to(math_dtype)) * factor
            if kept is not None:
                grad = torch.where(kept[rows].unsqueeze(1), grad, 0.0)
            if d_p is not None:
                d_p[rows] = grad
            if d_q is not None:
                d_q[rows] = -grad
        d_p = d_p.view(p.shape) if d_p is not None else None
        d_q = d_q.view(q.shape) if d_q is not None else None
        return d_p, d_q, None, None, None
