"""The vocabulary-shard passes as two persistent-grid Triton kernels (math and
layouts: :mod:`liger_kernel.vocab_shards`), shared by the vocab-parallel
cross-entropy and the fused linear scaled cross-entropy.

* ``_shard_stats_kernel`` reads each kept row of the shard once: online max and
  sum of exp over ``BLOCK``-wide blocks, with the sum of the logits and the
  exp-weighted sum of the logits less the max (moved along with the running max) when asked,
  and the target's logit when the shard holds it. An ignored row is not read.
* ``_shard_grad_kernel`` reads each kept row again and writes its gradient
  over the row of ``grad`` (which may be the logits themselves: each element
  is read before it is written); an ignored row is written as zeros unread.

Index arithmetic is int64: rows * V_local passes 2**31 at LLM sizes. The
launch follows the cross-entropy's rule for vocabulary rows (persistent grid
of ``vocab_programs_per_unit`` programs per compute unit, a block from the
register budget, pipelined loads where they fit).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.losses import chunk_rows
from liger_kernel.triton.launch import pipeline_stages, register_block

#: On-chip bytes budgeted per vocabulary element of a block: its loaded value
#: and the fp32 values derived from it (the scaled logit, its exponential and
#: their product, or the gradient).
BYTES_PER_BLOCK_ELEMENT = 16


@triton.jit
def _shard_stats_kernel(
    logits_ptr,
    logits_row_stride,
    target_ptr,
    stats_ptr,
    stats_row_stride,
    n_rows,
    n_cols,
    vocab_start,
    classes,
    ignore_index,
    scale,
    WANT_SUM: tl.constexpr,
    WANT_ENTROPY: tl.constexpr,
    FP64: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    acc_dtype = tl.float64 if FP64 else tl.float32
    cols = tl.arange(0, BLOCK)
    for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0)):
        row64 = tl.cast(row, tl.int64)
        out = stats_ptr + row64 * stats_row_stride
        target = tl.load(target_ptr + row64).to(tl.int64)
        if target == ignore_index:
            tl.store(out, 0.0)
            tl.store(out + 1, 1.0)
            tl.store(out + 2, 0.0)
            tl.store(out + 3, 0.0)
            tl.store(out + 4, 0.0)
        else:
            row_ptr = logits_ptr + row64 * logits_row_stride
            running_max = tl.full([], float("-inf"), acc_dtype)
            running_sum = tl.zeros([], acc_dtype)
            logit_sum = tl.zeros([], acc_dtype)
            weighted_sum = tl.zeros([], acc_dtype)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                offsets = start + cols
                mask = offsets < n_cols
                z = tl.load(row_ptr + offsets, mask=mask, other=0.0).to(acc_dtype) * scale
                z_in_row = tl.where(mask, z, float("-inf"))
                new_max = tl.maximum(running_max, tl.max(z_in_row, axis=0))
                rescale = tl.exp(running_max - new_max)
                exp = tl.exp(z_in_row - new_max)  # 0 outside the row
                running_sum_before = running_sum
                running_sum = running_sum * rescale + tl.sum(exp, axis=0)
                if WANT_SUM:
                    logit_sum += tl.sum(z, axis=0)  # 0 outside the row
                if WANT_ENTROPY:
                    # sum exp(z - m) * (z - m), moved to the new max (nothing to move before the first block)
                    step = tl.where(running_sum_before == 0, 0.0, running_max - new_max)
                    moved = (weighted_sum + step * running_sum_before) * rescale
                    shifted = tl.where(mask, z - new_max, 0.0)
                    weighted_sum = moved + tl.sum(exp * shifted, axis=0)
                running_max = new_max
            local = target - vocab_start
            owned = (local >= 0) & (local < n_cols)
            target_logit = tl.load(row_ptr + local, mask=owned, other=0.0).to(acc_dtype) * scale
            target_logit = tl.where(owned, target_logit, 0.0)
            # a target outside the whole vocabulary: NaN (the op contract says where it is an error)
            target_logit = tl.where((target >= 0) & (target < classes), target_logit, float("nan"))
            tl.store(out, running_max)
            tl.store(out + 1, running_sum)
            tl.store(out + 2, target_logit)
            tl.store(out + 3, logit_sum)
            tl.store(out + 4, weighted_sum)


@triton.jit
def _shard_grad_kernel(
    logits_ptr,
    logits_row_stride,
    grad_ptr,
    grad_row_stride,
    target_ptr,
    coefficients_ptr,
    n_rows,
    n_cols,
    vocab_start,
    ignore_index,
    scale,
    FP64: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    """dx_j = scale * (p_j * (A - E * z_j) - U - T_c * [j == t]), coefficients (rows, 5) contiguous."""
    acc_dtype = tl.float64 if FP64 else tl.float32
    cols = tl.arange(0, BLOCK)
    for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0)):
        row64 = tl.cast(row, tl.int64)
        grad_row = grad_ptr + row64 * grad_row_stride
        target = tl.load(target_ptr + row64).to(tl.int64)
        if target == ignore_index:
            zeros = tl.zeros([BLOCK], dtype=grad_ptr.dtype.element_ty)
            for start in tl.range(0, n_cols, BLOCK):
                offsets = start + cols
                tl.store(grad_row + offsets, zeros, mask=offsets < n_cols)
        else:
            row_ptr = logits_ptr + row64 * logits_row_stride
            coefficients = coefficients_ptr + row64 * 5
            lse = tl.load(coefficients).to(acc_dtype)
            a = tl.load(coefficients + 1).to(acc_dtype)
            e = tl.load(coefficients + 2).to(acc_dtype)
            u = tl.load(coefficients + 3).to(acc_dtype)
            t_c = tl.load(coefficients + 4).to(acc_dtype)
            local = target - vocab_start
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                offsets = start + cols
                mask = offsets < n_cols
                z = tl.load(row_ptr + offsets, mask=mask, other=0.0).to(acc_dtype) * scale
                grad = tl.exp(z - lse) * (a - e * z) - u - tl.where(offsets == local, t_c, 0.0)
                tl.store(grad_row + offsets, (grad * scale).to(grad_ptr.dtype.element_ty), mask=mask)


def _launch(logits: torch.Tensor) -> tuple[int, int, int, int]:
    """(grid, block, num_warps, stages) for the rows of ``logits``."""
    profile = device_profile(logits.device)
    n_rows, n_cols = logits.shape
    block = register_block(profile, n_cols, BYTES_PER_BLOCK_ELEMENT)
    stages = pipeline_stages(profile, block * logits.element_size())
    grid = max(1, min(n_rows, profile.compute_units * profile.vocab_programs_per_unit, profile.max_grid))
    return grid, block, profile.num_warps(block), stages


def _unit_columns(t: torch.Tensor) -> None:
    assert t.stride(1) == 1 or t.shape[1] == 1, "the kernels walk rows with unit column stride"


class TritonShardKernels:
    """:class:`liger_kernel.vocab_shards.ShardKernels` as the two kernels above."""

    @staticmethod
    def stats(logits, target, vocab_start, classes, ignore_index, scale, out, want_sum, want_entropy) -> None:
        if logits.shape[0] == 0:
            return
        _unit_columns(logits)
        assert out.stride(1) == 1
        grid, block, num_warps, stages = _launch(logits)
        _shard_stats_kernel[(grid,)](
            logits,
            logits.stride(0),
            target.contiguous(),
            out,
            out.stride(0),
            logits.shape[0],
            logits.shape[1],
            vocab_start,
            classes,
            ignore_index,
            float(scale),
            WANT_SUM=want_sum,
            WANT_ENTROPY=want_entropy,
            FP64=out.dtype == torch.float64,
            BLOCK=block,
            STAGES=stages,
            num_warps=num_warps,
        )

    @staticmethod
    def grad(logits, out, target, vocab_start, ignore_index, scale, coefficients) -> None:
        if logits.shape[0] == 0:
            return
        _unit_columns(logits)
        _unit_columns(out)
        grid, block, num_warps, stages = _launch(logits)
        coefficients = coefficients.contiguous()
        _shard_grad_kernel[(grid,)](
            logits,
            logits.stride(0),
            out,
            out.stride(0),
            target.contiguous(),
            coefficients,
            logits.shape[0],
            logits.shape[1],
            vocab_start,
            ignore_index,
            float(scale),
            FP64=coefficients.dtype == torch.float64,
            BLOCK=block,
            STAGES=stages,
            num_warps=num_warps,
        )

    @staticmethod
    def chunk_rows(n_rows: int, hidden: int, vocab: int, device: torch.device) -> int:
        profile = device_profile(device)
        return chunk_rows(
            n_rows, hidden, vocab, profile.lm_head_chunk_ratio, profile.lm_head_row_multiple, profile.lm_head_min_rows
        )
