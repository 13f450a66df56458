"""liger-xpu: the Intel GPU backend.

Serves device type ``xpu`` (PyTorch's XPU builds). Describing and probing the
backend imports neither triton nor a kernel. Every op runs a portable Triton
kernel of liger-kernel, none needing an XPU override: launch sizes come from the
XPU profile (:mod:`.profile`: sub-groups of 32, at most 32 per work-group,
blocks that fit shared local memory). Before the first kernel is imported, the
prepare step checks that the Triton in use is Intel's (:mod:`.triton_check`).
"""

from liger_kernel.backend import API_VERSION, Backend
from liger_kernel_xpu.probe import probe

BACKEND = Backend(
    name="xpu",
    device_types=("xpu",),
    priority=100,
    # the <vendor>-<dsl> implementation name of liger-kernel 0.8.5's registry
    aliases=("intel-triton",),
    api_version=API_VERSION,
    probe=probe,
    portable=True,
    prepare="liger_kernel_xpu.triton_check:require_intel_triton",
    install_hint=(
        "pip install torch --index-url https://download.pytorch.org/whl/xpu && pip install liger-kernel[xpu]"
    ),
    profile="liger_kernel_xpu.profile:xpu_profile",
    runtime_versions="liger_kernel_xpu.probe:runtime_versions",
    conformance="liger_kernel_xpu.conformance:CONFORMANCE",
)
