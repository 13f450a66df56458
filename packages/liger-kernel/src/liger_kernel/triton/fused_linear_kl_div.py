"""An LM head and the KL divergence from a target distribution, chunk by chunk over
tokens (math: :mod:`liger_kernel.ops.fused_linear_kl_div`).

The walk is the shared one (:func:`liger_kernel.losses.fused_linear_kl_div_function`
over :func:`liger_kernel.losses.walk_linear_chunks`): each chunk's logits by
torch.mm (cuBLAS) in the GEMM dtype into one reused buffer, then
``_kl_rows_kernel`` writes the rows' loss and dlogits over the logits, then the
chunk's share of dstudent_input and dstudent_weight. Chunks are sized by the
device profile as fused linear cross-entropy's (``lm_head_chunk_ratio``).

The kernel, per row (a persistent grid, one program per compute unit so that a
row stays in cache between its passes), in vocabulary blocks in fp32 (fp64 for
fp64): pass 1 reads the logits z and the target t and keeps the online max and
sum-exp of z / T together with sum t * (log max(t, eps) - z / T) and sum t, from
which loss = (that sum + lse * sum t) / D; pass 2 reads them again and writes
dlogits = (exp(z / T - lse) * sum t - t) / (T * D) over z. The student's
log-probabilities are never stored. A row whose index is IGNORED_ROW gets
loss 0 and a zero gradient.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.losses import chunk_rows, fused_linear_kl_div_function
from liger_kernel.triton.cross_entropy import scale_rows_
from liger_kernel.triton.jsd import vocab_launch
from liger_kernel.triton.launch import accumulator_dtype, launch


@triton.jit
def _kl_rows_kernel(
    LOGITS,
    logits_row_stride,
    ROWS,
    TARGET,
    target_row_stride,
    DIVISOR,
    LOSS,
    n_rows,
    n_cols,
    inv_temperature,
    eps,
    WRITE_GRAD: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
    STAGES: tl.constexpr,
):
    cols = tl.arange(0, BLOCK)
    inv_divisor = 1.0 / tl.load(DIVISOR).to(ACC)
    for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0)):
        row64 = tl.cast(row, tl.int64)
        logits_row = LOGITS + row64 * logits_row_stride
        source = tl.load(ROWS + row64)
        if source < 0:
            tl.store(LOSS + row64, 0.0)
            if WRITE_GRAD:
                zeros = tl.zeros([BLOCK], dtype=LOGITS.dtype.element_ty)
                for start in tl.range(0, n_cols, BLOCK):
                    tl.store(logits_row + start + cols, zeros, mask=start + cols < n_cols)
        else:
            target_row = TARGET + source * target_row_stride
            running_max = tl.full([], float("-inf"), ACC)
            running_sum = tl.zeros([], ACC)
            cross = tl.zeros([BLOCK], ACC)
            mass = tl.zeros([BLOCK], ACC)
            for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                mask = start + cols < n_cols
                z = tl.load(logits_row + start + cols, mask=mask, other=float("-inf")).to(ACC) * inv_temperature
                t = tl.load(target_row + start + cols, mask=mask, other=0.0).to(ACC)
                new_max = tl.maximum(running_max, tl.max(z, axis=0))
                running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(z - new_max), axis=0)
                running_max = new_max
                # masked columns have t = 0 (and z = -inf, replaced so that 0 * inf makes no NaN)
                cross += t * (tl.log(tl.maximum(t, eps)) - tl.where(mask, z, 0.0))
                mass += t
            lse = running_max + tl.log(running_sum)
            total_mass = tl.sum(mass, axis=0)
            tl.store(LOSS + row64, (tl.sum(cross, axis=0) + lse * total_mass) * inv_divisor)
            if WRITE_GRAD:
                scale = inv_temperature * inv_divisor
                for start in tl.range(0, n_cols, BLOCK, num_stages=STAGES):
                    mask = start + cols < n_cols
                    z = tl.load(logits_row + start + cols, mask=mask, other=float("-inf")).to(ACC) * inv_temperature
                    t = tl.load(target_row + start + cols, mask=mask, other=0.0).to(ACC)
                    dlogits = (tl.exp(z - lse) * total_mass - t) * scale
                    tl.store(logits_row + start + cols, dlogits.to(LOGITS.dtype.element_ty), mask=mask)


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
    """The row kernel (:class:`liger_kernel.losses.KLRowLoss`): launch ``_kl_rows_kernel``
    over the rows of one chunk (``logits`` and ``target`` with unit column stride)."""
    n_rows, n_cols = logits.shape
    if n_rows == 0:
        return
    plan = vocab_launch(n_rows, n_cols, logits.device, logits.element_size() + target.element_size(), 2)
    launch(
        device_profile(logits.device),
        _kl_rows_kernel,
        plan.grid,
        logits,
        logits.stride(0),
        rows,
        target,
        target.stride(0),
        divisor,
        loss,
        n_rows,
        n_cols,
        1.0 / temperature,
        eps,
        WRITE_GRAD=write_grad,
        ACC=accumulator_dtype(divisor.dtype),
        BLOCK=plan.block,
        STAGES=plan.stages,
        num_warps=plan.num_warps,
    )


def _rows_per_chunk(x: torch.Tensor, weight: torch.Tensor) -> int:
    profile = device_profile(x.device)
    return chunk_rows(
        x.shape[0],
        x.shape[1],
        weight.shape[0],
        profile.lm_head_chunk_ratio,
        profile.lm_head_row_multiple,
        profile.lm_head_min_rows,
    )


def _scale(grad: torch.Tensor, grad_loss: torch.Tensor) -> torch.Tensor:
    """grad *= grad_loss on the device, a no-op when it is 1 (see scale_rows_)."""
    return scale_rows_(grad.view(-1, grad.shape[-1]), grad_loss).view(grad.shape)


FusedLinearKLDivFunction = fused_linear_kl_div_function(kl_rows, _rows_per_chunk, "FusedLinearKLDivFunction", _scale)
