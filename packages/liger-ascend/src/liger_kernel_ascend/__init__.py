"""liger-ascend: the Ascend NPU backend.

Serves device type ``npu`` (registered by torch_npu). Describing and probing
this backend imports neither torch_npu nor triton: an NPU tensor exists only
once torch_npu is loaded (torch >= 2.5 autoloads it), so the probe looks at
``torch.npu`` and at distribution metadata. The kernels (``.ops``) are
imported on an op's first NPU call; that import runs the environment checks
of :mod:`.safety`. Launches are sized by :mod:`.profile` and :mod:`.tiling`.
"""

from liger_kernel.backend import API_VERSION, Backend
from liger_kernel_ascend.probe import probe

#: Every core op has an NPU kernel in liger_kernel_ascend.ops (see each module
#: for the NPU constraint it answers).
OPS: dict[str, str] = {
    "rms_norm": "liger_kernel_ascend.ops.rms_norm:RMSNormFunction",
    "fused_add_rms_norm": "liger_kernel_ascend.ops.fused_add_rms_norm:FusedAddRMSNormFunction",
    "layer_norm": "liger_kernel_ascend.ops.layer_norm:LayerNormFunction",
    "group_norm": "liger_kernel_ascend.ops.group_norm:GroupNormFunction",
    "poly_norm": "liger_kernel_ascend.ops.poly_norm:PolyNormFunction",
    "rope": "liger_kernel_ascend.ops.rope:RopeFunction",
    "qwen2vl_mrope": "liger_kernel_ascend.ops.qwen2vl_mrope:Qwen2VLMRopeFunction",
    "swiglu": "liger_kernel_ascend.ops.gates:SiLUMulFunction",
    "geglu": "liger_kernel_ascend.ops.gates:GELUMulFunction",
    "cross_entropy": "liger_kernel_ascend.ops.cross_entropy:CrossEntropyFunction",
    "fused_linear_cross_entropy": "liger_kernel_ascend.ops.fused_linear_cross_entropy:FusedLinearCrossEntropyFunction",
    "jsd": "liger_kernel_ascend.ops.jsd:JSDFunction",
    "fused_linear_jsd": "liger_kernel_ascend.ops.fused_linear_jsd:FusedLinearJSDFunction",
    "kl_div": "liger_kernel_ascend.ops.kl_div:KLDivFunction",
    "tvd": "liger_kernel_ascend.ops.tvd:TVDFunction",
    "softmax": "liger_kernel_ascend.ops.softmax:SoftmaxFunction",
    "sparsemax": "liger_kernel_ascend.ops.sparsemax:SparsemaxFunction",
    "dyt": "liger_kernel_ascend.ops.dyt:DyTFunction",
}

BACKEND = Backend(
    name="ascend",
    device_types=("npu",),
    priority=100,
    api_version=API_VERSION,
    probe=probe,
    ops=OPS,
    install_hint="pip install liger-kernel[ascend]  (after CANN, torch and torch-npu)",
    profile="liger_kernel_ascend.profile:npu_profile",
    runtime_versions="liger_kernel_ascend.probe:runtime_versions",
    conformance="liger_kernel_ascend.conformance:CONFORMANCE",
)
