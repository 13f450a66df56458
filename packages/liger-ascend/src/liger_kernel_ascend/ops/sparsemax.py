"""Sparsemax on the NPU: the portable Triton kernels of
:mod:`liger_kernel.triton.sparsemax`, unchanged (math: :mod:`liger_kernel.ops.sparsemax`).

They meet the NPU's limits as they are, sized by the NPU profile: the grid is
one program per vector core (far below the 65535-program limit); the kernels
keep rows of up to half the profile's block (2048 columns on an A2 vector
core) in the UB and walk wider rows in blocks, so any width fits. The strict
NPU mock measures at most 80 KiB of fp32 values live, which leaves room in
the 192 KiB UB for the compiler's double-buffered DMA tiles. The threshold
search is a data-dependent loop of whole-row reductions (no sort), which the
vector unit runs as it runs any row reduction.
Importing them through this package first runs the environment checks of
:mod:`liger_kernel_ascend.safety`.
"""

from liger_kernel.triton.sparsemax import SparsemaxFunction

__all__ = ["SparsemaxFunction"]
