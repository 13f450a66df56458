"""liger-rocm: the AMD backend.

ROCm builds of torch expose AMD GPUs as device type ``cuda``; this backend
claims that device type only when ``torch.version.hip`` is set, so with both
liger-cuda and liger-rocm installed each build picks its own vendor.
"""

from liger_kernel.backend import API_VERSION, Backend
from liger_kernel_rocm.probe import probe

#: Every op runs the portable kernels (see liger_kernel_rocm.ops for why that
#: module sits in between).
OPS = {
    op: f"liger_kernel_rocm.ops:{cls}"
    for op, cls in {
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
        "fused_linear_jsd": "FusedLinearJSDFunction",
        "kl_div": "KLDivFunction",
        "tvd": "TVDFunction",
        "softmax": "SoftmaxFunction",
        "sparsemax": "SparsemaxFunction",
        "dyt": "DyTFunction",
    }.items()
}

BACKEND = Backend(
    name="rocm",
    device_types=("cuda",),
    priority=100,
    api_version=API_VERSION,
    probe=probe,
    ops=OPS,
    install_hint="pip install liger-kernel[rocm]  (after installing a ROCm build of torch)",
    profile="liger_kernel_rocm.profile:amd_profile",
    runtime_versions="liger_kernel_rocm.probe:runtime_versions",
)
