"""``element_mul_kernel``, the in-place row scaling that liger-kernel 0.8.x kept
in ``liger_kernel.ops.utils`` (which still offers it, importing this module on
first use): the backward of a loss whose per-row gradient was stored in the
forward multiplies it by the incoming scalar gradient."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def element_mul_kernel(
    X_ptr,
    X_stride,
    grad_output_ptr,
    n_cols,
    BLOCK_SIZE: tl.constexpr,
    X_col_stride: tl.constexpr = 1,
):
    """Row ``program_id(0)`` of X (rows ``X_stride`` elements apart, columns
    ``X_col_stride`` apart), ``n_cols`` wide, times the scalar at
    ``grad_output_ptr``, written in place, ``BLOCK_SIZE`` columns per step."""
    row = tl.program_id(0).to(tl.int64)
    scale = tl.load(grad_output_ptr)
    start = X_ptr + row * X_stride
    for offset in range(0, n_cols, BLOCK_SIZE):
        cols = offset + tl.arange(0, BLOCK_SIZE)
        inside = cols < n_cols
        pointers = start + cols.to(tl.int64) * X_col_stride
        tl.store(pointers, tl.load(pointers, mask=inside) * scale, mask=inside)
