"""The kernels liger-xpu routes to.

Intel GPUs run the portable Triton kernels of liger-core unchanged: their
launch sizes come from the XPU profile (sub-groups of 32, at most 32 per
work-group, blocks that fit shared local memory). This module exists so that
importing them first checks that the Triton in use is Intel's.
"""

from liger_kernel_xpu.triton_check import require_intel_triton

require_intel_triton()

from liger_kernel.triton import portable_functions  # noqa: E402

_functions = portable_functions()
globals().update(_functions)  # the Function names the backend's ops table points at
__all__ = sorted(_functions)
