"""liger-xpu: the Intel GPU backend.

Serves device type ``xpu`` (PyTorch's XPU builds). Describing and probing the
backend imports neither triton nor a kernel; the kernels (:mod:`.ops`, the
portable Triton kernels of liger-core) are imported on an op's first XPU call,
and that import checks that the Triton in use is Intel's (:mod:`.triton_check`).
Launches are sized by :mod:`.profile`.
"""

from liger_kernel.backend import API_VERSION, Backend
from liger_kernel.triton import portable_ops
from liger_kernel_xpu.probe import probe

#: Every op runs a portable kernel, re-exported by liger_kernel_xpu.ops (whose
#: import checks the Triton build); none needs an XPU override.
OPS = portable_ops("liger_kernel_xpu.ops")

BACKEND = Backend(
    name="xpu",
    device_types=("xpu",),
    priority=100,
    api_version=API_VERSION,
    probe=probe,
    ops=OPS,
    install_hint=(
        "pip install torch --index-url https://download.pytorch.org/whl/xpu && pip install liger-kernel[xpu]"
    ),
    profile="liger_kernel_xpu.profile:xpu_profile",
    runtime_versions="liger_kernel_xpu.probe:runtime_versions",
    conformance="liger_kernel_xpu.conformance:CONFORMANCE",
)
