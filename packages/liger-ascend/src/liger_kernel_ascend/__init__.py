"""liger-ascend: the Ascend NPU backend.

Serves device type ``npu`` (registered by torch_npu). Describing and probing
this backend imports neither torch_npu nor triton: an NPU tensor exists only
once torch_npu is loaded (torch >= 2.5 autoloads it), so the probe looks at
``torch.npu`` and at distribution metadata. Before the first kernel is
imported, the dispatcher runs the prepare step, the environment checks of
:mod:`.safety`. Launches are sized by :mod:`.profile` and :mod:`.tiling`.

The ops in :data:`FUNCTIONS` have NPU kernels of their own (:mod:`.ops`, each
module saying which NPU constraint it answers). Every other op runs its
portable Triton kernel unchanged, which already meets the NPU's limits when
sized by the NPU profile, as the strict NPU mock checks on every launch:
persistent grids of at most one program per vector core (the runtime refuses
more than 65535 programs), tiles no wider than the profile's block, the widest
for which every portable kernel's tile fits the 192 KiB unified buffer less a
margin by the bytes the compiler allocates for it (:mod:`.portable`, rows
wider than a block are walked in blocks), and weight gradients summed in
per-program partial buffers, never with atomics.
The fused linear JSD runs its GEMMs through torch.mm (torch_npu's cube-unit
kernels) and its loss as the portable JSD kernel. The mHC and AttnRes ops run
their PyTorch form (:mod:`.ops.mhc`, :mod:`.ops.attn_res`): their portable
kernels' tiles do not meet the NPU's 32-byte row pitch; so does multi-token
attention (:mod:`.ops.multi_token_attention`: the NPU compiler does not compile
its portable convolution kernel).
"""

from liger_kernel.backend import API_VERSION, Backend
from liger_kernel_ascend.probe import probe

#: The ops whose NPU kernel differs from the portable one.
FUNCTIONS: dict[str, str] = {
    "rms_norm": "liger_kernel_ascend.ops.rms_norm:RMSNormFunction",
    "fused_add_rms_norm": "liger_kernel_ascend.ops.fused_add_rms_norm:FusedAddRMSNormFunction",
    "layer_norm": "liger_kernel_ascend.ops.layer_norm:LayerNormFunction",
    "rope": "liger_kernel_ascend.ops.rope:RopeFunction",
    "swiglu": "liger_kernel_ascend.ops.gates:SiLUMulFunction",
    "geglu": "liger_kernel_ascend.ops.gates:GELUMulFunction",
    "cross_entropy": "liger_kernel_ascend.ops.cross_entropy:CrossEntropyFunction",
    "fused_linear_cross_entropy": "liger_kernel_ascend.ops.fused_linear_cross_entropy:FusedLinearCrossEntropyFunction",
    "dyt": "liger_kernel_ascend.ops.dyt:DyTFunction",
    "group_norm": "liger_kernel_ascend.ops.group_norm:GroupNormFunction",
    "qwen2vl_mrope": "liger_kernel_ascend.ops.qwen2vl_mrope:Qwen2VLMRopeFunction",
    "fused_moe": "liger_kernel_ascend.ops.fused_moe:FusedMoEFunction",
    "clamped_swiglu": "liger_kernel_ascend.ops.clamped_swiglu:ClampedSwiGLUFunction",
    "llama4_rope": "liger_kernel_ascend.ops.llama4_rope:Llama4RopeFunction",
    # the PyTorch form of these (the portable kernels' tiles break the NPU's 32-byte row pitch)
    "mhc_coeffs": "liger_kernel_ascend.ops.mhc:MHCCoeffsFunction",
    "mhc_pre": "liger_kernel_ascend.ops.mhc:MHCPreFunction",
    "mhc_post_res": "liger_kernel_ascend.ops.mhc:MHCPostResFunction",
    "attn_res": "liger_kernel_ascend.ops.attn_res:AttnResFunction",
    # the PyTorch form (bishengir does not compile the portable convolution kernel)
    "multi_token_attention": "liger_kernel_ascend.ops.multi_token_attention:MultiTokenAttentionFunction",
}

BACKEND = Backend(
    name="ascend",
    device_types=("npu",),
    priority=100,
    # liger-kernel 0.8.5's implementation name (its older name was "ascend", as here)
    aliases=("ascend-triton",),
    api_version=API_VERSION,
    probe=probe,
    functions=FUNCTIONS,
    portable=True,
    prepare="liger_kernel_ascend.safety:check_environment",
    install_hint="pip install liger-kernel[ascend]  (after CANN, torch and torch-npu)",
    profile="liger_kernel_ascend.profile:npu_profile",
    runtime_versions="liger_kernel_ascend.probe:runtime_versions",
    conformance="liger_kernel_ascend.conformance:CONFORMANCE",
)
