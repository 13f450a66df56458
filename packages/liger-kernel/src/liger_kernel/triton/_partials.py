"""The last step of a norm's parameter gradients: adding up per-program partial rows.

A norm backward that also sums over rows (dW = sum over rows of dy * n, and
dB = sum over rows of dy) runs one program per compute unit; each program adds
its rows' contributions into its own fp32 partial row, so no two programs
write one address and the result does not depend on scheduling. Here

    out[s, c] = sum over p of partials[s, p, c]      (s: dW, dB, ...)

is taken in one launch that also rounds to each parameter's dtype, where
``partials.sum(1).to(dtype)`` would take two or more launches: the norms are
bound by host time at training sizes, and each launch costs some.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.triton.launch import accumulator_dtype, launch

#: columns per program, and partial rows loaded per step: a (ROWS, COLS) tile
#: of independent loads keeps enough bytes in flight that the walk over a
#: hundred-odd partial rows takes a few steps, not a hundred dependent loads
COLS = 128
ROWS = 32


@triton.jit
def _sum_partials_kernel(
    PARTIALS,
    OUT0,
    OUT1,
    n_partials,
    n_cols,
    col_blocks,
    ACC: tl.constexpr,
    ROWS: tl.constexpr,
    COLS: tl.constexpr,
):
    pid = tl.program_id(0)
    which = pid // col_blocks
    cols = (pid % col_blocks) * COLS + tl.arange(0, COLS)
    col_mask = cols < n_cols
    rows = tl.arange(0, ROWS)
    base = PARTIALS + which.to(tl.int64) * n_partials * n_cols
    total = tl.zeros([ROWS, COLS], dtype=ACC)
    for start in tl.range(0, n_partials, ROWS):
        mask = ((start + rows) < n_partials)[:, None] & col_mask[None, :]
        total += tl.load(base + (start + rows)[:, None] * n_cols + cols[None, :], mask=mask, other=0.0)
    column_sums = tl.sum(total, axis=0)
    if which == 0:
        tl.store(OUT0 + cols, column_sums.to(OUT0.dtype.element_ty), mask=col_mask)
    else:
        tl.store(OUT1 + cols, column_sums.to(OUT1.dtype.element_ty), mask=col_mask)


def sum_partials(partials: torch.Tensor, dtypes: Sequence[torch.dtype]) -> list[torch.Tensor]:
    """``partials`` (sums, programs, cols) -> one (cols,) total per sum, in ``dtypes``."""
    sums, n_partials, n_cols = partials.shape
    if sums != len(dtypes) or sums not in (1, 2):
        raise ValueError(f"sum_partials takes 1 or 2 sums with a dtype each, got {sums} and {list(dtypes)}")
    outs = [torch.empty(n_cols, dtype=dtype, device=partials.device) for dtype in dtypes]
    col_blocks = triton.cdiv(n_cols, COLS)
    launch(
        device_profile(partials.device),
        _sum_partials_kernel,
        sums * col_blocks,
        partials,
        outs[0],
        outs[-1],
        n_partials,
        n_cols,
        col_blocks,
        ACC=accumulator_dtype(partials.dtype),
        ROWS=ROWS,
        COLS=COLS,
        num_warps=4,
    )
    return outs
