"""Dynamic Tanh (DyT) on the NPU: the portable Triton kernels of
:mod:`liger_kernel.triton.dyt`, unchanged (math: :mod:`liger_kernel.ops.dyt`).

They meet the NPU's limits as they are, sized by the NPU profile: the grid is
one program per vector core (far below the 65535-program limit), and tiles
are half (forward) and a quarter (backward) of the profile's block (2048 and
1024 elements on an A2 vector core), so any hidden size fits. The strict NPU
mock measures at most 72 KiB of fp32 values live, which leaves room in the
192 KiB UB for the compiler's double-buffered DMA tiles. dgamma, dbeta and
dalpha are summed per program into partial buffers: no atomics.
Importing them through this package first runs the environment checks of
:mod:`liger_kernel_ascend.safety`.
"""

from liger_kernel.triton.dyt import DyTFunction

__all__ = ["DyTFunction"]
