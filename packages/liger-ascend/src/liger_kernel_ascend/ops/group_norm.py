"""GroupNorm on the NPU: the portable Triton kernel, where the chip can run it.

Math: :mod:`liger_kernel.ops.group_norm`. The portable kernel meets the NPU's
limits when sized by the NPU profile: its persistent grid is
``profile.grid(rows)`` (at most one program per vector core, far below the
65535 limit), its tiles are at most ``profile.max_block`` elements, which the
profile derives from the unified-buffer budget, and it uses no atomics.

Its tiles are (channels x positions) with a row pitch of S positions: when a
tile holds several channels and S * itemsize is not a multiple of 32 bytes
(odd spatial sizes), the A3 vector cores fault on the 2-D DMA, so such a call
runs on the torch backend (torch_npu's kernels), logged once.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from liger_kernel.backends.torch.group_norm import GroupNormFunction as TorchGroupNormFunction
from liger_kernel.dispatch import device_profile
from liger_kernel.triton.group_norm import GroupNormFunction as PortableGroupNormFunction
from liger_kernel.triton.group_norm import tile_shape
from liger_kernel_ascend.ops._common import PITCH_ALIGN_BYTES, check_npu_dtype, log_torch_fallback


def _pitch_faults(X: torch.Tensor, num_channels: int, num_groups: int) -> bool:
    """Whether the portable kernel would use multi-channel tiles with an unaligned pitch."""
    n_positions = math.prod(X.shape[2:])
    block_c, _ = tile_shape(device_profile(X.device), num_channels // num_groups, n_positions)
    return block_c > 1 and n_positions * X.element_size() % PITCH_ALIGN_BYTES != 0


class GroupNormFunction(PortableGroupNormFunction):
    """The portable GroupNorm kernel, or the torch backend where its tiles would fault."""

    @staticmethod
    def forward(
        ctx: Any,
        X: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        num_channels: int,
        num_groups: int,
        eps: float,
    ) -> torch.Tensor:
        check_npu_dtype("group_norm", X.dtype)
        ctx.on_torch = _pitch_faults(X, num_channels, num_groups)
        if ctx.on_torch:
            log_torch_fallback("group_norm", "spatial size x itemsize is not a multiple of 32 bytes")
            return TorchGroupNormFunction.forward(ctx, X, weight, bias, num_channels, num_groups, eps)
        return PortableGroupNormFunction.forward(ctx, X, weight, bias, num_channels, num_groups, eps)

    @staticmethod
    def backward(ctx: Any, dY: torch.Tensor) -> tuple[Any, ...]:
        if ctx.on_torch:
            return TorchGroupNormFunction.backward(ctx, dY)
        return PortableGroupNormFunction.backward(ctx, dY)
