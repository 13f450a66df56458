"""The kernels liger-rocm routes to.

AMD hardware runs the portable Triton kernels of liger-core unchanged: their
launch sizes come from the AMD profile (64-wide wavefronts cap num_warps at 16,
blocks at 16384 elements), which is all CDNA needs. This module exists so that
importing them first checks that the `triton` module is ROCm's own.
"""

from liger_kernel_rocm.triton_check import require_rocm_triton

require_rocm_triton()

from liger_kernel.triton import portable_functions  # noqa: E402

_functions = portable_functions()
globals().update(_functions)  # the Function names the backend's ops table points at
__all__ = sorted(_functions)
