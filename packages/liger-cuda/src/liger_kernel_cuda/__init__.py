"""liger-cuda: the NVIDIA backend.

Serves device type ``cuda`` on CUDA builds of torch (a ROCm build reports the
same device type and is left to liger-rocm). Every op runs a portable Triton
kernel of liger-kernel, sized by the NVIDIA profile in :mod:`.profile`; none
needs an NVIDIA override.
"""

from liger_kernel.backend import API_VERSION, Backend
from liger_kernel_cuda.probe import probe

BACKEND = Backend(
    name="cuda",
    device_types=("cuda",),
    priority=100,
    # liger-kernel 0.8.5 names: its implementation name, and the bare DSL name it took for it
    aliases=("nvidia-triton", "triton"),
    api_version=API_VERSION,
    probe=probe,
    portable=True,
    install_hint="pip install liger-kernel[cuda]",
    profile="liger_kernel_cuda.profile:nvidia_profile",
    runtime_versions="liger_kernel_cuda.probe:runtime_versions",
)
