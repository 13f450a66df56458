"""Is there an AMD GPU under a ROCm build of torch? Uses torch only."""

from __future__ import annotations

from importlib import metadata

import torch


def probe() -> tuple[bool, str]:
    if torch.version.hip is None:
        return False, f"torch {torch.__version__} is not a ROCm build (torch.version.hip is None)"
    if not torch.cuda.is_available():
        return False, f"ROCm build (HIP {torch.version.hip}) but no AMD GPU is visible"
    count = torch.cuda.device_count()
    return True, f"{count} ROCm device(s): {torch.cuda.get_device_name(0)}, HIP {torch.version.hip}"


def runtime_versions() -> dict[str, str]:
    versions = {}
    for dist in ("pytorch-triton-rocm", "triton"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions
