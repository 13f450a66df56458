"""Dynamic Tanh (DyT) on the NPU: the portable Triton kernels of
:mod:`liger_kernel.triton.dyt` where the chip can run them (math:
:mod:`liger_kernel.ops.dyt`).

They meet the NPU's limits as they are, sized by the NPU profile: the grid is
one program per vector core (far below the 65535-program limit), and tiles
are half (forward) and a quarter (backward) of the profile's block (2048 and
1024 elements on an A2 vector core), so any hidden size fits. The strict NPU
mock measures at most 72 KiB of fp32 values live, which leaves room in the
192 KiB UB for the compiler's double-buffered DMA tiles. dgamma, dbeta and
dalpha are summed per program into partial buffers: no atomics.

A narrow H makes their tiles several rows tall; when a row pitch (of x, y, dy
or dx) is then not a multiple of 32 bytes, the A3 vector cores fault on the
2-D DMA, so such a call runs on the torch backend (torch_npu's kernels),
logged once.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch.dyt import DyTFunction as TorchDyTFunction
from liger_kernel.dispatch import device_profile
from liger_kernel.triton.dyt import DyTFunction as PortableDyTFunction
from liger_kernel.triton.dyt import backward_tile, forward_tile, tile_plan
from liger_kernel.triton.launch import as_rows
from liger_kernel_ascend.ops._common import PITCH_ALIGN_BYTES, check_npu_dtype, log_torch_fallback, pitch_aligned


def _pitch_faults(x: torch.Tensor) -> bool:
    """Whether the portable kernels would use multi-row tiles with an unaligned
    pitch: x's rows, and the dense (rows, H) outputs and gradients."""
    rows = as_rows(x)
    n_rows, n_cols = rows.shape
    if n_rows == 0 or (pitch_aligned(rows) and n_cols * rows.element_size() % PITCH_ALIGN_BYTES == 0):
        return False
    profile = device_profile(x.device)
    tiles = (forward_tile(profile), backward_tile(profile))
    return any(tile_plan(profile, n_rows, n_cols, tile).block_rows > 1 for tile in tiles)


class DyTFunction(PortableDyTFunction):
    """The portable DyT kernels, or the torch backend where their tiles would fault."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, alpha: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None
    ) -> torch.Tensor:
        check_npu_dtype("dyt", x.dtype)
        ctx.on_torch = _pitch_faults(x)
        if ctx.on_torch:
            log_torch_fallback("dyt", "a multi-row tile's row pitch is not a multiple of 32 bytes")
            return TorchDyTFunction.forward(ctx, x, alpha, gamma, beta)
        return PortableDyTFunction.forward(ctx, x, alpha, gamma, beta)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[Any, ...]:
        if ctx.on_torch:
            return TorchDyTFunction.backward(ctx, dy)
        return PortableDyTFunction.backward(ctx, dy)


__all__ = ["DyTFunction"]
