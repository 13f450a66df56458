"""The kernels liger-xpu routes to.

Intel GPUs run the portable Triton kernels of liger-core unchanged: their
launch sizes come from the XPU profile (sub-groups of 32, at most 32 per
work-group, blocks that fit shared local memory). This module exists so that
importing them first checks that the Triton in use is Intel's.
"""

from liger_kernel_xpu.triton_check import require_intel_triton

require_intel_triton()

from liger_kernel.triton.cross_entropy import CrossEntropyFunction  # noqa: E402
from liger_kernel.triton.dyt import DyTFunction  # noqa: E402
from liger_kernel.triton.fused_add_rms_norm import FusedAddRMSNormFunction  # noqa: E402
from liger_kernel.triton.fused_linear_cross_entropy import FusedLinearCrossEntropyFunction  # noqa: E402
from liger_kernel.triton.fused_linear_jsd import FusedLinearJSDFunction  # noqa: E402
from liger_kernel.triton.geglu import GELUMulFunction  # noqa: E402
from liger_kernel.triton.group_norm import GroupNormFunction  # noqa: E402
from liger_kernel.triton.jsd import JSDFunction  # noqa: E402
from liger_kernel.triton.kl_div import KLDivFunction  # noqa: E402
from liger_kernel.triton.layer_norm import LayerNormFunction  # noqa: E402
from liger_kernel.triton.poly_norm import PolyNormFunction  # noqa: E402
from liger_kernel.triton.qwen2vl_mrope import Qwen2VLMRopeFunction  # noqa: E402
from liger_kernel.triton.rms_norm import RMSNormFunction  # noqa: E402
from liger_kernel.triton.rope import RopeFunction  # noqa: E402
from liger_kernel.triton.softmax import SoftmaxFunction  # noqa: E402
from liger_kernel.triton.sparsemax import SparsemaxFunction  # noqa: E402
from liger_kernel.triton.swiglu import SiLUMulFunction  # noqa: E402
from liger_kernel.triton.tvd import TVDFunction  # noqa: E402

__all__ = [
    "CrossEntropyFunction",
    "DyTFunction",
    "FusedAddRMSNormFunction",
    "FusedLinearCrossEntropyFunction",
    "FusedLinearJSDFunction",
    "GELUMulFunction",
    "GroupNormFunction",
    "JSDFunction",
    "KLDivFunction",
    "LayerNormFunction",
    "PolyNormFunction",
    "Qwen2VLMRopeFunction",
    "RMSNormFunction",
    "RopeFunction",
    "SiLUMulFunction",
    "SoftmaxFunction",
    "SparsemaxFunction",
    "TVDFunction",
]
