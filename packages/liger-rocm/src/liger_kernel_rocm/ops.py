"""The kernels liger-rocm routes to.

AMD hardware runs the portable Triton kernels of liger-core unchanged: their
launch sizes come from the AMD profile (64-wide wavefronts cap num_warps at 16,
blocks at 16384 elements), which is all CDNA needs. This module exists so that
importing them first checks that the `triton` module is ROCm's own.
"""

from liger_kernel_rocm.triton_check import require_rocm_triton

require_rocm_triton()

from liger_kernel.triton.cross_entropy import CrossEntropyFunction  # noqa: E402
from liger_kernel.triton.fused_add_rms_norm import FusedAddRMSNormFunction  # noqa: E402
from liger_kernel.triton.fused_linear_cross_entropy import FusedLinearCrossEntropyFunction  # noqa: E402
from liger_kernel.triton.geglu import GELUMulFunction  # noqa: E402
from liger_kernel.triton.layer_norm import LayerNormFunction  # noqa: E402
from liger_kernel.triton.rms_norm import RMSNormFunction  # noqa: E402
from liger_kernel.triton.rope import RopeFunction  # noqa: E402
from liger_kernel.triton.swiglu import SiLUMulFunction  # noqa: E402

__all__ = [
    "CrossEntropyFunction",
    "FusedAddRMSNormFunction",
    "FusedLinearCrossEntropyFunction",
    "GELUMulFunction",
    "LayerNormFunction",
    "RMSNormFunction",
    "RopeFunction",
    "SiLUMulFunction",
]
