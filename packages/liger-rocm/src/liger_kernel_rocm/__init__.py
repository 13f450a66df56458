"""liger-rocm: the AMD backend.

ROCm builds of torch expose AMD GPUs as device type ``cuda``; this backend
claims that device type only when ``torch.version.hip`` is set, so with both
liger-cuda and liger-rocm installed each build picks its own vendor.
"""

from liger_kernel.backend import API_VERSION, Backend
from liger_kernel.triton import portable_ops
from liger_kernel_rocm.probe import probe

#: Every op runs the portable kernels (see liger_kernel_rocm.ops for why that
#: module sits in between).
OPS = portable_ops("liger_kernel_rocm.ops")

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
