"""Is there a ``xpu`` device this backend can drive?

Uses torch only: discovery and ``liger-kernel info`` run every probe, so a
probe never imports Triton or a vendor extension it does not need, and never
calls shell tools. It answers ``(ok, reason)``; the reason says what was found,
or what to install or fix.
"""

from __future__ import annotations

from importlib import metadata

import torch

DEVICE_TYPE = "xpu"

#: distributions whose versions ``liger-kernel info`` reports for this backend
#: (the vendor's torch extension, its Triton build, ...)
RUNTIME_DISTRIBUTIONS: tuple[str, ...] = ()


def probe() -> tuple[bool, str]:
    runtime = getattr(torch, DEVICE_TYPE, None)
    is_available = getattr(runtime, "is_available", None)
    if is_available is None:
        return False, (
            f"torch {torch.__version__} has no torch.{DEVICE_TYPE} runtime "
            "(is the vendor's torch extension installed and imported?)"
        )
    if not is_available():
        return False, f"torch.{DEVICE_TYPE}.is_available() is False: no device or driver is visible"
    count_devices = getattr(runtime, "device_count", None)
    count = count_devices() if count_devices is not None else 1
    return True, f"{count} {DEVICE_TYPE} device(s), torch {torch.__version__}"


def runtime_versions() -> dict[str, str]:
    versions = {}
    for dist in RUNTIME_DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions
