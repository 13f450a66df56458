"""Device and package helpers that training frameworks import from ``liger_kernel.utils``.

This module (with :mod:`liger_kernel.ops.utils`, which re-exports the kernel
helpers of it) is the only place in liger-kernel that names vendor devices: it
answers "which accelerator is this process on" in the vocabulary that
torch.distributed and Transformers use, as liger-kernel 0.8.x did.

Where 0.8.x differs:

- :func:`infer_comm_backend` follows :func:`infer_device` ("nccl" only where
  there is a CUDA or ROCm device, "gloo" on a CPU-only machine). 0.8.x
  answered "nccl" whenever torch was built with NCCL, device or not, and
  preferred "mpi" to "gloo".
- :func:`is_npu_available` asks torch (``torch.npu``, present once torch_npu
  is imported), not Transformers, so it needs no Transformers install.
- :data:`PEFT_AVAILABLE` is whether ``peft`` is installed, found without
  importing it (importing peft pulls in Transformers and accelerate).
"""

from __future__ import annotations

import functools
import importlib.util
import operator
from collections.abc import Callable
from typing import Any

import torch

#: Whether the ``peft`` package is installed.
PEFT_AVAILABLE: bool = importlib.util.find_spec("peft") is not None


def is_peft_available() -> bool:
    return PEFT_AVAILABLE


def is_npu_available() -> bool:
    """Whether an Ascend NPU is usable (torch_npu imported and a device present)."""
    npu = getattr(torch, "npu", None)
    try:
        return npu is not None and bool(npu.is_available())
    except Exception:  # a torch_npu whose driver is missing raises instead of answering False
        return False


def _xpu_available() -> bool:
    xpu = getattr(torch, "xpu", None)
    return xpu is not None and bool(xpu.is_available())


def infer_device() -> str:
    """ "cuda" (NVIDIA or ROCm), "npu", "xpu" or "cpu"."""
    if torch.cuda.is_available():
        return "cuda"
    if is_npu_available():
        return "npu"
    if _xpu_available():
        return "xpu"
    return "cpu"


_COMM_BACKENDS = {"cuda": "nccl", "npu": "hccl", "xpu": "xccl", "cpu": "gloo"}


def infer_comm_backend() -> str:
    """The torch.distributed backend for :func:`infer_device`'s device."""
    return _COMM_BACKENDS[infer_device()]


def is_hip() -> bool:
    """Whether torch is a ROCm build (its "cuda" devices are AMD GPUs)."""
    return torch.version.hip is not None


# Compute capability -> family; a capability not listed is named "sm_<major><minor>".
_NVIDIA_FAMILIES = {
    (7, 0): "volta_turing",
    (7, 5): "volta_turing",
    (8, 0): "ampere_ada",
    (8, 6): "ampere_ada",
    (8, 9): "ampere_ada",
    (9, 0): "hopper",
    (10, 0): "blackwell",
    (10, 3): "blackwell_ultra",
    (12, 0): "blackwell_consumer",
}
# gfx target -> family; a target not listed is named as it is ("gfx1030").
_AMD_FAMILIES = {
    "gfx908": "cdna",
    "gfx90a": "cdna2",
    "gfx940": "cdna3",
    "gfx941": "cdna3",
    "gfx942": "cdna3",
    "gfx1100": "rdna3",
    "gfx1101": "rdna3",
    "gfx1102": "rdna3",
}
# Substrings of a device name -> family, first match wins.
_XPU_FAMILIES = ((("max", "pvc", "ponte"), "pvc"), (("arc", "battlemage", "alchemist"), "arc"))
_NPU_FAMILIES = ((("910",), "ascend910"), (("310",), "ascend310"))


def _family_by_name(name: str, table: tuple[tuple[tuple[str, ...], str], ...], fallback: str) -> str:
    name = name.lower()
    return next((family for tags, family in table if any(tag in name for tag in tags)), fallback)


@functools.cache
def infer_device_arch(device_id: int = 0) -> str:
    """A coarse architecture name of device ``device_id``, for tuning tables.

    NVIDIA: "volta_turing", "ampere_ada", "hopper", "blackwell",
    "blackwell_ultra", "blackwell_consumer", else "sm_<major><minor>"; AMD:
    "cdna", "cdna2", "cdna3", "rdna3", else the gfx target; Intel: "pvc",
    "arc", else "xpu"; Ascend: "ascend910", "ascend310", else "npu". Without an
    accelerator, or when the device cannot be queried, :func:`infer_device`'s
    answer ("cpu"). Cached: ``infer_device_arch.cache_clear()`` resets it.
    """
    device = infer_device()
    try:
        if device == "cuda" and is_hip():
            gfx = getattr(torch.cuda.get_device_properties(device_id), "gcnArchName", "").split(":")[0]
            return _AMD_FAMILIES.get(gfx, gfx or device)
        if device == "cuda":
            major, minor = torch.cuda.get_device_capability(device_id)
            return _NVIDIA_FAMILIES.get((major, minor), f"sm_{major}{minor}")
        if device == "xpu":
            return _family_by_name(torch.xpu.get_device_properties(device_id).name, _XPU_FAMILIES, "xpu")
        if device == "npu":
            return _family_by_name(torch.npu.get_device_properties(device_id).name, _NPU_FAMILIES, "npu")
    except Exception:  # a device that cannot be queried (no driver, a bad index): no known family
        return device
    return device


def get_total_gpu_memory() -> int:
    """Total memory of accelerator 0, in whole GiB. RuntimeError without one."""
    device = infer_device()
    if device == "cpu":
        raise RuntimeError("get_total_gpu_memory: no CUDA, ROCm, XPU or NPU device is available")
    return getattr(torch, device).get_device_properties(0).total_memory // 2**30


def get_npu_core_count(default: int = 20) -> int:
    """Vector-core count of NPU 0, as the Ascend backend reads it; ``default``
    when liger-ascend is not installed or the device does not answer."""
    try:
        from liger_kernel_ascend.profile import core_counts
    except ImportError:
        return default
    try:
        return core_counts(0).vector
    except Exception:  # no device or driver: the documented fallback
        return default


def set_large_grf_mode(kernel_args: dict[str, Any]) -> None:
    """Ask for the large register file in a Triton launch's keyword arguments
    on Intel GPUs: ``grf_mode="256"`` from Triton 3.6 (Intel's
    ``pytorch-triton-xpu`` or ``triton``), ``"large"`` before."""
    from liger_kernel.ops.utils import compare_version  # the version helper lives with the kernel helpers

    recent = any(compare_version(name, operator.ge, "3.6.0") for name in ("pytorch-triton-xpu", "triton"))
    kernel_args["grf_mode"] = "256" if recent else "large"


def transformers_version_dispatch(
    required_version: str,
    before_fn: Callable[..., Any],
    after_fn: Callable[..., Any],
    before_args: tuple = (),
    after_args: tuple = (),
    before_kwargs: dict[str, Any] | None = None,
    after_kwargs: dict[str, Any] | None = None,
) -> Any:
    """``before_fn(*before_args, **before_kwargs)`` when the installed
    Transformers is older than ``required_version``, else
    ``after_fn(*after_args, **after_kwargs)``; the chosen call's result."""
    from packaging.version import Version
    from transformers import __version__ as installed

    if Version(installed) < Version(required_version):
        return before_fn(*before_args, **(before_kwargs or {}))
    return after_fn(*after_args, **(after_kwargs or {}))
