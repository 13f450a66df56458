"""Is there an Ascend NPU this backend can drive? Uses torch and distribution
metadata only: neither torch_npu nor triton is imported here."""

from __future__ import annotations

from importlib import metadata, util

import torch

from liger_kernel_ascend.safety import release, torch_npu_version, triton_problem, version_problems


def probe() -> tuple[bool, str]:
    npu = getattr(torch, "npu", None)
    if npu is None:
        if util.find_spec("torch_npu") is None:
            return False, "torch_npu is not installed"
        return False, "torch_npu is installed but not imported (import torch_npu before using NPU tensors)"
    if not npu.is_available():
        return False, "torch.npu.is_available() is False: no NPU or driver visible"
    problem = triton_problem()
    if problem:
        return False, problem
    mismatches = version_problems(torch.__version__, torch_npu_version())
    if mismatches:
        return False, "; ".join(mismatches)
    return (
        True,
        f"{npu.device_count()} NPU(s): {npu.get_device_name(0)}, torch_npu {release(torch_npu_version() or '?')}",
    )


def runtime_versions() -> dict[str, str]:
    versions = {}
    for dist in ("torch-npu", "triton-ascend"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions
