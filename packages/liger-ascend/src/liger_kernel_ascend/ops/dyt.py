"""Dynamic Tanh (DyT) on the NPU: the portable Triton kernels of
:mod:`liger_kernel.triton.dyt` where the chip can run them (math:
:mod:`liger_kernel.ops.dyt`).

They meet the NPU's limits as they are, sized by the NPU profile: the grid is
one program per vector core (far below the 65535-program limit), and tiles
are half (forward) and a quarter (backward) of the profile's block, which
:mod:`liger_kernel_ascend.portable` sizes so that every such tile fits the UB
budget by the kernels' calibrated costs (what bishengir allocates for them).
dgamma, dbeta and dalpha are summed per program into partial buffers: no atomics.

A narrow H makes their tiles several rows tall; when a row pitch (of x, y, dy
or dx) is then not a multiple of 32 bytes, the A3 vector cores fault on the
2-D DMA, so such a call takes one row per tile (a tile with no pitch), checked
again in backward for the gradient's layout. Importing this module runs the
environment checks of :mod:`liger_kernel_ascend.safety`.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.triton.dyt import dyt_backward, dyt_forward
from liger_kernel.triton.launch import as_rows
from liger_kernel_ascend.ops._common import PITCH_ALIGN_BYTES, check_npu_dtype, pitch_aligned


def _row_limit(*rows: torch.Tensor) -> int | None:
    """One row per tile when a 2-D ``rows`` tensor, or the dense (rows, H)
    result written alongside, has a row pitch not 32-byte aligned."""
    dense_pitch = rows[0].shape[1] * rows[0].element_size()
    return None if pitch_aligned(*rows) and dense_pitch % PITCH_ALIGN_BYTES == 0 else 1


class DyTFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, alpha: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None
    ) -> torch.Tensor:
        check_npu_dtype("dyt", x.dtype)
        return dyt_forward(ctx, x, alpha, gamma, beta, max_block_rows=_row_limit(as_rows(x)))

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[Any, ...]:
        x_rows = ctx.saved_tensors[0]
        return dyt_backward(ctx, dy, max_block_rows=_row_limit(x_rows, as_rows(dy)))


__all__ = ["DyTFunction"]
