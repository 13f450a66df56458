"""Total variation distance on the NPU: the portable Triton kernels of
:mod:`liger_kernel.triton.tvd`, unchanged (math: :mod:`liger_kernel.ops.tvd`).

They meet the NPU's limits as they are, sized by the NPU profile: the grid is
one program per vector core (far below the 65535-program limit), and a row is
walked in blocks capped by the profile's unified-buffer budget (4096 columns
on an A2 vector core), so any vocabulary fits; the strict NPU mock runs them.
Importing them through this package first runs the environment checks of
:mod:`liger_kernel_ascend.safety`.
"""

from liger_kernel.triton.tvd import TVDFunction

__all__ = ["TVDFunction"]
