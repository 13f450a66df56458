"""liger-ascend: the Ascend NPU backend.

Serves device type ``npu`` (registered by torch_npu). Describing and probing
this backend imports neither torch_npu nor triton: an NPU tensor exists only
once the user has imported torch_npu, so the probe looks at ``torch.npu``.
"""

from liger_kernel.backend import API_VERSION, Backend

from liger_kernel_ascend.probe import probe

OPS: dict[str, str] = {}

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
)
