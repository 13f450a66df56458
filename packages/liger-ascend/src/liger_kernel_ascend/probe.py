"""Is there an Ascend NPU? Uses torch (and the torch.npu that torch_npu adds)."""

from __future__ import annotations

from importlib import metadata, util

import torch


def probe() -> tuple[bool, str]:
    npu = getattr(torch, "npu", None)
    if npu is None:
        if util.find_spec("torch_npu") is None:
            return False, "torch_npu is not installed"
        return False, "torch_npu is installed but not imported (import torch_npu before using NPU tensors)"
    if not npu.is_available():
        return False, "torch.npu.is_available() is False: no NPU or driver visible"
    return True, f"{npu.device_count()} NPU(s): {npu.get_device_name(0)}"


def runtime_versions() -> dict[str, str]:
    versions = {}
    for dist in ("torch-npu", "triton-ascend"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions
