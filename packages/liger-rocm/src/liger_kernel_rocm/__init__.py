"""liger-rocm: the AMD backend.

ROCm builds of torch expose AMD GPUs as device type ``cuda``; this backend
claims that device type only when ``torch.version.hip`` is set, so with both
liger-cuda and liger-rocm installed each build picks its own vendor.

AMD hardware runs the portable Triton kernels of liger-kernel unchanged: their
launch sizes come from the AMD profile (64-wide wavefronts cap num_warps at 16,
blocks at 16384 elements), which is all CDNA needs. Before the first kernel is
imported, the prepare step checks that the ``triton`` module is ROCm's own
(:mod:`.triton_check`).
"""

from liger_kernel.backend import API_VERSION, Backend
from liger_kernel_rocm.probe import probe

BACKEND = Backend(
    name="rocm",
    device_types=("cuda",),
    priority=100,
    # the <vendor>-<dsl> implementation names of liger-kernel 0.8.5's registry
    aliases=("rocm-triton", "amd-triton"),
    api_version=API_VERSION,
    probe=probe,
    portable=True,
    prepare="liger_kernel_rocm.triton_check:require_rocm_triton",
    install_hint="pip install liger-kernel[rocm]  (after installing a ROCm build of torch)",
    profile="liger_kernel_rocm.profile:amd_profile",
    runtime_versions="liger_kernel_rocm.probe:runtime_versions",
)
