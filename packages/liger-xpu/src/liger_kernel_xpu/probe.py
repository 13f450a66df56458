"""Is there an Intel GPU under an XPU build of torch? Uses torch only."""

from __future__ import annotations

from importlib import metadata

import torch

#: distributions whose versions ``liger-kernel info`` reports for this backend:
#: Intel's Triton, and plain ``triton`` (which must not be there; info shows it if it is)
RUNTIME_DISTRIBUTIONS: tuple[str, ...] = ("pytorch-triton-xpu", "triton")


def probe() -> tuple[bool, str]:
    xpu = getattr(torch, "xpu", None)
    if xpu is None or getattr(torch.version, "xpu", None) is None:
        return False, (
            f"torch {torch.__version__} is not an XPU build (torch.version.xpu is None); "
            "install it with: pip install torch --index-url https://download.pytorch.org/whl/xpu"
        )
    if not xpu.is_available():
        return False, (
            f"XPU build (SYCL {torch.version.xpu}) but torch.xpu.is_available() is False: "
            "no Intel GPU or Level Zero driver is visible (check ZE_AFFINITY_MASK and the GPU driver)"
        )
    return True, f"{xpu.device_count()} XPU device(s): {xpu.get_device_name(0)}, SYCL {torch.version.xpu}"


def runtime_versions() -> dict[str, str]:
    versions = {}
    for dist in RUNTIME_DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions
