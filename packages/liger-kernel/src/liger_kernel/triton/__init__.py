"""Portable Triton kernels, forward and backward, one module per op.

Written once for every Triton backend (NVIDIA, AMD, Ascend) and sized at launch
from the backend's :class:`liger_kernel.backend.DeviceProfile`. Only a Triton
backend imports this package: importing it imports ``triton``, which liger-kernel
does not depend on. Kernels use ``tl.*`` math only, so they also run under the
Triton interpreter (``TRITON_INTERPRET=1``) on CPU tensors.
"""

from __future__ import annotations

import os

#: Where :func:`apply_liger_triton_cache_manager` points Triton.
CACHE_MANAGER = "liger_kernel.triton.monkey_patch:LigerTritonFileCacheManager"


def apply_liger_triton_cache_manager() -> None:
    """Make Triton write its cache files atomically (set ``TRITON_CACHE_MANAGER``
    to :class:`liger_kernel.triton.monkey_patch.LigerTritonFileCacheManager`),
    so that ranks sharing a cache directory never read each other's half-written
    files. Takes effect for kernels compiled afterwards; imports nothing."""
    os.environ["TRITON_CACHE_MANAGER"] = CACHE_MANAGER


#: op -> (module, autograd Function) of the portable kernel serving it. Strings
#: only: a backend description names them without importing triton.
PORTABLE_FUNCTIONS: dict[str, tuple[str, str]] = {
    "rms_norm": ("liger_kernel.triton.rms_norm", "RMSNormFunction"),
    "fused_add_rms_norm": ("liger_kernel.triton.fused_add_rms_norm", "FusedAddRMSNormFunction"),
    "layer_norm": ("liger_kernel.triton.layer_norm", "LayerNormFunction"),
    "group_norm": ("liger_kernel.triton.group_norm", "GroupNormFunction"),
    "poly_norm": ("liger_kernel.triton.poly_norm", "PolyNormFunction"),
    "rope": ("liger_kernel.triton.rope", "RopeFunction"),
    "qwen2vl_mrope": ("liger_kernel.triton.qwen2vl_mrope", "Qwen2VLMRopeFunction"),
    "swiglu": ("liger_kernel.triton.swiglu", "SiLUMulFunction"),
    "geglu": ("liger_kernel.triton.geglu", "GELUMulFunction"),
    "cross_entropy": ("liger_kernel.triton.cross_entropy", "CrossEntropyFunction"),
    "fused_linear_cross_entropy": ("liger_kernel.triton.fused_linear_cross_entropy", "FusedLinearCrossEntropyFunction"),
    "jsd": ("liger_kernel.triton.jsd", "JSDFunction"),
    "fused_linear_jsd": ("liger_kernel.triton.fused_linear_jsd", "FusedLinearJSDFunction"),
    "kl_div": ("liger_kernel.triton.kl_div", "KLDivFunction"),
    "tvd": ("liger_kernel.triton.tvd", "TVDFunction"),
    "softmax": ("liger_kernel.triton.softmax", "SoftmaxFunction"),
    "sparsemax": ("liger_kernel.triton.sparsemax", "SparsemaxFunction"),
    "dyt": ("liger_kernel.triton.dyt", "DyTFunction"),
    "fused_moe": ("liger_kernel.triton.fused_moe", "FusedMoEFunction"),
    "relu_squared": ("liger_kernel.triton.relu_squared", "ReLUSquaredFunction"),
    "modulated_rms_norm": ("liger_kernel.triton.modulated_rms_norm", "ModulatedRMSNormFunction"),
    "clamped_swiglu": ("liger_kernel.triton.clamped_swiglu", "ClampedSwiGLUFunction"),
    "llama4_rope": ("liger_kernel.triton.llama4_rope", "Llama4RopeFunction"),
    "selective_log_softmax": ("liger_kernel.triton.selective_log_softmax", "SelectiveLogSoftmaxFunction"),
    "grpo_loss": ("liger_kernel.triton.grpo_loss", "GrpoLossFunction"),
    "embedding": ("liger_kernel.triton.embedding", "EmbeddingFunction"),
    "fused_linear_kl_div": ("liger_kernel.triton.fused_linear_kl_div", "FusedLinearKLDivFunction"),
    "fused_ce_tvd": ("liger_kernel.triton.fused_ce_tvd", "FusedCETVDFunction"),
    "vocab_parallel_cross_entropy": ("liger_kernel.triton.vocab_parallel_cross_entropy", "VocabParallelCEFunction"),
    "fused_linear_scaled_cross_entropy": (
        "liger_kernel.triton.fused_linear_scaled_cross_entropy",
        "FusedLinearScaledCrossEntropyFunction",
    ),
    "mhc_coeffs": ("liger_kernel.triton.mhc", "MHCCoeffsFunction"),
    "mhc_pre": ("liger_kernel.triton.mhc", "MHCPreFunction"),
    "mhc_post_res": ("liger_kernel.triton.mhc", "MHCPostResFunction"),
    "attn_res": ("liger_kernel.triton.attn_res", "AttnResFunction"),
    "multi_token_attention": ("liger_kernel.triton.multi_token_attention", "MultiTokenAttentionFunction"),
}


def portable_ops() -> dict[str, str]:
    """op -> ``"module:attr"`` of its portable kernel: the table a backend with
    ``portable=True`` overrides (:attr:`liger_kernel.backend.Backend.implementations`)."""
    return {op: f"{module}:{name}" for op, (module, name) in PORTABLE_FUNCTIONS.items()}
