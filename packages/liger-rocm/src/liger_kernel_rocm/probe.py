"""Is there an AMD GPU under a ROCm build of torch? Uses torch only."""

from __future__ import annotations

import torch


def probe() -> tuple[bool, str]:
    if torch.version.hip is None:
        return False, f"torch {torch.__version__} is not a ROCm build (torch.version.hip is None)"
    if not torch.cuda.is_available():
        return False, f"ROCm build (HIP {torch.version.hip}) but no AMD GPU is visible"
    from liger_kernel_rocm.triton_check import triton_problem

    count = torch.cuda.device_count()
    found = f"{count} ROCm device(s): {torch.cuda.get_device_name(0)}, HIP {torch.version.hip}"
    # A wrong triton does not make the GPU unavailable: the backend is still
    # chosen, and importing its kernels raises with the repair command, so the
    # problem is loud rather than a silent fallback to the slow path.
    problem = triton_problem()
    return True, found + (f"; WARNING: {problem}" if problem else "")


def runtime_versions() -> dict[str, str]:
    """Every distribution that owns the ``triton`` module (more than one is the problem the check reports)."""
    from liger_kernel_rocm.triton_check import installed_layout

    return dict(installed_layout().owners)
