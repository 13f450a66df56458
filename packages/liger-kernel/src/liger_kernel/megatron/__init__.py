"""Megatron-Core integration: its RMSNorm, SwiGLU and vocabulary-parallel
cross-entropy on this project's ops, and the patch that makes Megatron's specs
build them (:func:`apply_liger_kernel_to_megatron`).

Importing this package does not import Megatron-Core; the patch does.
"""

from liger_kernel.megatron.cross_entropy import LigerMegatronCrossEntropy
from liger_kernel.megatron.monkey_patch import apply_liger_kernel_to_megatron, revert_liger_kernel_to_megatron
from liger_kernel.megatron.rms_norm import LigerMegatronRMSNorm
from liger_kernel.megatron.swiglu import LigerMegatronSwiGLU

__all__ = [
    "LigerMegatronCrossEntropy",
    "LigerMegatronRMSNorm",
    "LigerMegatronSwiGLU",
    "apply_liger_kernel_to_megatron",
    "revert_liger_kernel_to_megatron",
]
