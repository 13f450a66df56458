"""Device helpers that training frameworks import from ``liger_kernel.utils``.

These two functions are the only place in liger-kernel that names vendor
devices: they answer "which accelerator is this process on" in the vocabulary
that torch.distributed and Transformers use.
"""

from __future__ import annotations

import torch


def infer_device() -> str:
    """ "cuda" (NVIDIA or ROCm), "npu", "xpu" or "cpu"."""
    if torch.cuda.is_available():
        return "cuda"
    npu = getattr(torch, "npu", None)
    if npu is not None and npu.is_available():
        return "npu"
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        return "xpu"
    return "cpu"


_COMM_BACKENDS = {"cuda": "nccl", "npu": "hccl", "xpu": "xccl", "cpu": "gloo"}


def infer_comm_backend() -> str:
    """The torch.distributed backend for :func:`infer_device`'s device."""
    return _COMM_BACKENDS[infer_device()]
