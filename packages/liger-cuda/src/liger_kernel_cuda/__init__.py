"""liger-cuda: the NVIDIA backend.

Serves device type ``cuda`` on CUDA builds of torch (a ROCm build reports the
same device type and is left to liger-rocm). Kernels are the portable Triton
kernels of liger-core, sized by the NVIDIA profile in :mod:`.profile`.
"""

from liger_kernel.backend import API_VERSION, Backend
from liger_kernel.triton import portable_ops
from liger_kernel_cuda.probe import probe

#: The portable Triton kernels serve every op on NVIDIA hardware.
OPS = portable_ops()

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
