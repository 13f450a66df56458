"""The ``torch`` backend: every op in pure PyTorch, on any device.

It is the reference users fall back to on a CPU, and the backend an op takes
when the selected vendor backend does not implement it. Registered through the
same entry-point group as the vendor backends.
"""

from liger_kernel.backend import API_VERSION, Backend

OP_CLASSES = {
    "rms_norm": "RMSNormFunction",
    "fused_add_rms_norm": "FusedAddRMSNormFunction",
    "layer_norm": "LayerNormFunction",
    "group_norm": "GroupNormFunction",
    "poly_norm": "PolyNormFunction",
    "rope": "RopeFunction",
    "qwen2vl_mrope": "Qwen2VLMRopeFunction",
    "swiglu": "SiLUMulFunction",
    "geglu": "GELUMulFunction",
    "cross_entropy": "CrossEntropyFunction",
    "fused_linear_cross_entropy": "FusedLinearCrossEntropyFunction",
    "jsd": "JSDFunction",
    "kl_div": "KLDivFunction",
    "tvd": "TVDFunction",
    "fused_linear_jsd": "FusedLinearJSDFunction",
    "softmax": "SoftmaxFunction",
    "sparsemax": "SparsemaxFunction",
    "dyt": "DyTFunction",
    "fused_moe": "FusedMoEFunction",
    "relu_squared": "ReLUSquaredFunction",
    "modulated_rms_norm": "ModulatedRMSNormFunction",
    "clamped_swiglu": "ClampedSwiGLUFunction",
    "llama4_rope": "Llama4RopeFunction",
    "selective_log_softmax": "SelectiveLogSoftmaxFunction",
    "grpo_loss": "GrpoLossFunction",
    "embedding": "EmbeddingFunction",
    "fused_linear_kl_div": "FusedLinearKLDivFunction",
    "fused_ce_tvd": "FusedCETVDFunction",
    "vocab_parallel_cross_entropy": "VocabParallelCEFunction",
    "fused_linear_scaled_cross_entropy": "FusedLinearScaledCrossEntropyFunction",
    "mhc_coeffs": "MHCCoeffsFunction",
    "mhc_pre": "MHCPreFunction",
    "mhc_post_res": "MHCPostResFunction",
    "attn_res": "AttnResFunction",
    "multi_token_attention": "MultiTokenAttentionFunction",
}


def _probe() -> tuple[bool, str]:
    return True, "pure PyTorch, runs on any device"


BACKEND = Backend(
    name="torch",
    device_types=("*",),
    priority=0,
    # the pure-PyTorch name of liger-kernel 0.8.5 (its PYTORCH_FALLBACK capability)
    aliases=("pytorch",),
    api_version=API_VERSION,
    probe=_probe,
    functions={op: f"{__name__}.{op}:{cls}" for op, cls in OP_CLASSES.items()},
    install_hint="pip install liger-kernel",
)
