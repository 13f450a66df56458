"""Is there an NVIDIA GPU this backend can drive? Uses torch only."""

from __future__ import annotations

from importlib import metadata, util

import torch


def probe() -> tuple[bool, str]:
    if torch.version.hip is not None:
        return False, f"torch {torch.__version__} is a ROCm (HIP {torch.version.hip}) build; liger-rocm serves it"
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is built without CUDA"
    if not torch.cuda.is_available():
        return False, "torch.cuda.is_available() is False: no NVIDIA GPU or driver visible"
    if util.find_spec("triton") is None:
        return False, "the triton package is not installed (pip install triton)"
    count = torch.cuda.device_count()
    return True, f"{count} CUDA device(s): {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}"


def runtime_versions() -> dict[str, str]:
    try:
        return {"triton": metadata.version("triton")}
    except metadata.PackageNotFoundError:
        return {}
