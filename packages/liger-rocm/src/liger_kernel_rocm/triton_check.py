"""Is the `triton` module the one ROCm's torch was built with?

ROCm builds of torch depend on ``pytorch-triton-rocm``, which installs the
``triton`` module. ``pip install triton`` (NVIDIA's wheel, also pulled in by
any package that lists plain ``triton``) writes a different build over the
same files, and kernels then fail to compile or miscompile. We look at the
distribution metadata only, without importing triton.
"""

from __future__ import annotations

from importlib import metadata

ROCM_TRITON = "pytorch-triton-rocm"
REPAIR = (
    "pip uninstall -y triton pytorch-triton-rocm && "
    "pip install --force-reinstall pytorch-triton-rocm==<the version your torch requires> "
    "(from the same ROCm package index you installed torch from; "
    "`pip show torch` lists it under Requires)"
)


def triton_problem() -> str | None:
    """None if the installed triton suits ROCm, else what is wrong and how to fix it."""
    from liger_kernel.dispatch import dispatcher

    if dispatcher.device_alias:
        # Under a kernel mock CPU tensors stand in for GPU ones and any triton's
        # interpreter runs the kernels: the build does not matter.
        return None
    providers = metadata.packages_distributions().get("triton", [])
    if not providers:
        return f"no triton module is installed; ROCm's torch ships it as {ROCM_TRITON}. Repair: {REPAIR}"
    if "triton" in providers:
        return (
            "the triton module comes from the 'triton' distribution (NVIDIA's build), "
            f"installed over or instead of {ROCM_TRITON}. Repair: {REPAIR}"
        )
    return None


def require_rocm_triton() -> None:
    problem = triton_problem()
    if problem:
        raise ImportError(f"liger-rocm: {problem}")
