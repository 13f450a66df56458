"""Softmax on the NPU: the portable Triton kernels of
:mod:`liger_kernel.triton.softmax`, unchanged (math: :mod:`liger_kernel.ops.softmax`).

They meet the NPU's limits as they are, sized by the NPU profile: the grid is
one program per vector core (far below the 65535-program limit), and a row
wider than the profile's block (4096 columns on an A2 vector core) is walked
in blocks with an online maximum, so any width fits. The strict NPU mock
measures at most 80 KiB of fp32 values live (five 4096-element tiles), which
leaves room in the 192 KiB UB for the compiler's double-buffered DMA tiles.
Importing them through this package first runs the environment checks of
:mod:`liger_kernel_ascend.safety`.
"""

from liger_kernel.triton.softmax import SoftmaxFunction

__all__ = ["SoftmaxFunction"]
