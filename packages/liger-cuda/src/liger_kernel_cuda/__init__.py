"""liger-cuda: the NVIDIA backend.

Serves device type ``cuda`` on CUDA builds of torch (a ROCm build reports the
same device type and is left to liger-rocm). Kernels are the portable Triton
kernels of liger-core, sized by the NVIDIA profile in :mod:`.profile`.
"""

from liger_kernel.backend import API_VERSION, Backend
from liger_kernel_cuda.probe import probe

#: The portable Triton kernels serve every op on NVIDIA hardware.
OPS = {
    "rms_norm": "liger_kernel.triton.rms_norm:RMSNormFunction",
    "fused_add_rms_norm": "liger_kernel.triton.fused_add_rms_norm:FusedAddRMSNormFunction",
    "layer_norm": "liger_kernel.triton.layer_norm:LayerNormFunction",
    "group_norm": "liger_kernel.triton.group_norm:GroupNormFunction",
    "poly_norm": "liger_kernel.triton.poly_norm:PolyNormFunction",
    "rope": "liger_kernel.triton.rope:RopeFunction",
    "qwen2vl_mrope": "liger_kernel.triton.qwen2vl_mrope:Qwen2VLMRopeFunction",
    "swiglu": "liger_kernel.triton.swiglu:SiLUMulFunction",
    "geglu": "liger_kernel.triton.geglu:GELUMulFunction",
    "cross_entropy": "liger_kernel.triton.cross_entropy:CrossEntropyFunction",
    "fused_linear_cross_entropy": "liger_kernel.triton.fused_linear_cross_entropy:FusedLinearCrossEntropyFunction",
    "jsd": "liger_kernel.triton.jsd:JSDFunction",
    "fused_linear_jsd": "liger_kernel.triton.fused_linear_jsd:FusedLinearJSDFunction",
    "kl_div": "liger_kernel.triton.kl_div:KLDivFunction",
    "tvd": "liger_kernel.triton.tvd:TVDFunction",
    "softmax": "liger_kernel.triton.softmax:SoftmaxFunction",
    "sparsemax": "liger_kernel.triton.sparsemax:SparsemaxFunction",
    "dyt": "liger_kernel.triton.dyt:DyTFunction",
}

BACKEND = Backend(
    name="cuda",
    device_types=("cuda",),
    priority=100,
    api_version=API_VERSION,
    probe=probe,
    ops=OPS,
    install_hint="pip install liger-kernel[cuda]",
    profile="liger_kernel_cuda.profile:nvidia_profile",
    runtime_versions="liger_kernel_cuda.probe:runtime_versions",
)
