"""Selected-token log-softmax over a vocabulary as two persistent-grid Triton kernels
(math: :mod:`liger_kernel.ops.grpo_loss`).

They are the vocabulary passes of :class:`liger_kernel.losses.SelectedLogProbKernels`,
which the GRPO loss shares (:mod:`liger_kernel.triton.grpo_loss`):

* ``_selected_logp_kernel`` reads each (b, t) row of the logits once (online max and
  sum of exp over ``BLOCK``-wide blocks) and stores its log-sum-exp and the selected
  token's log-probability; a masked row is not read.
* ``_selected_logp_backward_kernel`` reads each row again and writes
  ``([j == id] - p_j) * scale`` over the row of ``grad`` (which may be the logits
  themselves: each element is read before it is written); the last position, and
  rows whose scale is 0 (masked tokens), are written as zeros without a read.

Rows are addressed through the logits' batch and position strides (the
vocabulary stride must be 1), so the (B, L + 1, V) tensor is never reshaped or
copied. Index arithmetic is int64: B * (L + 1) * V passes 2**31 at LLM sizes.
An id outside [0, V) makes its token NaN.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.losses import selective_log_softmax_function
from liger_kernel.ops.grpo_loss import loss_dtype
from liger_kernel.triton.launch import pipeline_stages, register_block

#: On-chip bytes budgeted per vocabulary element of a block: its loaded value and the
#: fp32 values derived from it (the scaled logit, its exponential, the gradient).
BYTES_PER_BLOCK_ELEMENT = 16


@triton.jit
def _selected_logp_kernel(
    logits_ptr,
    logits_stride_b,
    logits_stride_t,
    ids_ptr,
    ids_stride_b,
    ids_stride_t,
    mask_ptr,
    mask_stride_b,
    mask_stride_t,
    logp_ptr,
    lse_ptr,
    n_rows,
    length,
    n_cols,
    temperature,
    HAS_MASK: tl.constexpr,
    FP64: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    acc_dtype = tl.float64 if FP64 else tl.float32
    cols = tl.arange(0, BLOCK)
    for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0)):
        row64 = tl.cast(row, tl.int64)
        b = row64 // length
        t = row64 % length
        keep = True
        if HAS_MASK:
            keep = tl.load(mask_ptr + b * mask_stride_b + t * mask_stride_t) != 0
        logp = tl.zeros([], acc_dtype)
        lse = tl.zeros([], acc_dtype)
        if keep:
            row_ptr = logits_ptr + b * logits_stride_b + t * logits_stride_t
            running_max = tl.full([], float("-inf"), acc_dtype)
            running_sum = tl.zeros([], acc_dtype)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                offsets = start + cols
                x = tl.load(row_ptr + offsets, mask=offsets < n_cols, other=float("-inf")).to(acc_dtype) / temperature
                new_max = tl.maximum(running_max, tl.max(x, axis=0))
                running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(x - new_max), axis=0)
                running_max = new_max
            lse = running_max + tl.log(running_sum)
            token = tl.load(ids_ptr + b * ids_stride_b + t * ids_stride_t).to(tl.int64)
            in_range = (token >= 0) & (token < n_cols)
            picked = tl.load(row_ptr + token, mask=in_range, other=0.0).to(acc_dtype) / temperature
            logp = tl.where(in_range, picked - lse, float("nan"))
        tl.store(logp_ptr + row64, logp)
        tl.store(lse_ptr + row64, lse)


@triton.jit
def _selected_logp_backward_kernel(
    logits_ptr,
    logits_stride_b,
    logits_stride_t,
    grad_ptr,
    grad_stride_b,
    grad_stride_t,
    ids_ptr,
    ids_stride_b,
    ids_stride_t,
    lse_ptr,
    scale_ptr,
    n_rows,
    positions,
    length,
    n_cols,
    temperature,
    FP64: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    """``scale`` and ``lse`` are contiguous (B, L); rows run over all B * (L + 1) positions."""
    acc_dtype = tl.float64 if FP64 else tl.float32
    cols = tl.arange(0, BLOCK)
    for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0)):
        row64 = tl.cast(row, tl.int64)
        b = row64 // positions
        t = row64 % positions
        grad_row = grad_ptr + b * grad_stride_b + t * grad_stride_t
        token_row = b * length + t
        scale = tl.load(scale_ptr + token_row, mask=t < length, other=0.0).to(acc_dtype)
        if scale == 0:
            zeros = tl.zeros([BLOCK], dtype=grad_ptr.dtype.element_ty)
            for start in tl.range(0, n_cols, BLOCK):
                offsets = start + cols
                tl.store(grad_row + offsets, zeros, mask=offsets < n_cols)
        else:
            row_ptr = logits_ptr + b * logits_stride_b + t * logits_stride_t
            lse = tl.load(lse_ptr + token_row).to(acc_dtype)
            token = tl.load(ids_ptr + b * ids_stride_b + t * ids_stride_t).to(tl.int64)
            scale = tl.where((token >= 0) & (token < n_cols), scale, float("nan"))
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                offsets = start + cols
                in_row = offsets < n_cols
                x = tl.load(row_ptr + offsets, mask=in_row, other=0.0).to(acc_dtype) / temperature
                p = tl.exp(x - lse)
                grad = (tl.where(offsets == token, 1.0, 0.0) - p) * scale
                tl.store(grad_row + offsets, grad.to(grad_ptr.dtype.element_ty), mask=in_row)


def _launch(logits: torch.Tensor, n_rows: int) -> tuple[int, int, int, int]:
    """(grid, block, num_warps, stages): the cross-entropy's rule for vocabulary rows,
    at this kernel's BYTES_PER_BLOCK_ELEMENT."""
    profile = device_profile(logits.device)
    vocab = logits.shape[-1]
    block = register_block(profile, vocab, BYTES_PER_BLOCK_ELEMENT)
    stages = pipeline_stages(profile, block * logits.element_size())
    grid = max(1, min(n_rows, profile.compute_units * profile.vocab_programs_per_unit, profile.max_grid))
    return grid, block, profile.num_warps(block), stages


def _flags(mask: torch.Tensor) -> torch.Tensor:
    # a bool mask read as bytes (same storage): what every Triton build loads
    return mask.view(torch.uint8) if mask.dtype == torch.bool else mask


class TritonSelectedLogProb:
    """:class:`liger_kernel.losses.SelectedLogProbKernels` as the two kernels above."""

    @staticmethod
    def forward(
        logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor | None, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, positions, vocab = logits.shape
        length = positions - 1
        logp = torch.empty((batch, length), dtype=loss_dtype(logits), device=logits.device)
        lse = torch.empty_like(logp)
        n_rows = batch * length
        if n_rows == 0:
            return logp, lse
        grid, block, num_warps, stages = _launch(logits, n_rows)
        flags = _flags(mask) if mask is not None else logp
        _selected_logp_kernel[(grid,)](
            logits,
            logits.stride(0),
            logits.stride(1),
            ids,
            ids.stride(0),
            ids.stride(1),
            flags,
            flags.stride(0) if mask is not None else 0,
            flags.stride(1) if mask is not None else 0,
            logp,
            lse,
            n_rows,
            length,
            vocab,
            float(temperature),
            HAS_MASK=mask is not None,
            FP64=logits.dtype == torch.float64,
            BLOCK=block,
            STAGES=stages,
            num_warps=num_warps,
        )
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
        n_rows = batch * positions
        if n_rows == 0:
            return
        assert grad.stride(-1) == 1 or vocab == 1, "the kernel walks rows with unit column stride"
        grid, block, num_warps, stages = _launch(logits, n_rows)
        _selected_logp_backward_kernel[(grid,)](
            logits,
            logits.stride(0),
            logits.stride(1),
            grad,
            grad.stride(0),
            grad.stride(1),
            ids,
            ids.stride(0),
            ids.stride(1),
            lse.contiguous(),
            scale.contiguous(),
            n_rows,
            positions,
            positions - 1,
            vocab,
            float(temperature),
            FP64=logits.dtype == torch.float64,
            BLOCK=block,
            STAGES=stages,
            num_warps=num_warps,
        )


SelectiveLogSoftmaxFunction = selective_log_softmax_function(TritonSelectedLogProb, "SelectiveLogSoftmaxFunction")
