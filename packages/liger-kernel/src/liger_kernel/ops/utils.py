"""Kernel helpers that frameworks import from ``liger_kernel.ops.utils``, as in liger-kernel 0.8.x.

Importing this module needs neither triton nor a device: ``torch_to_triton_dtype``
imports triton on its first lookup. The device-naming helpers (``is_hip``,
``get_npu_core_count``, ``set_large_grf_mode``) live in :mod:`liger_kernel.utils`
and are re-exported here. The element-wise Triton kernel 0.8.x kept here
(``element_mul_kernel``) is not offered: liger-core holds no Triton kernel
outside :mod:`liger_kernel.triton`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from typing import Any, ClassVar

import torch
from packaging.version import InvalidVersion, Version

from liger_kernel.utils import get_npu_core_count, infer_device, is_hip, set_large_grf_mode

#: The widest block :func:`calculate_settings` plans for one row.
MAX_FUSED_SIZE = 65536

__all__ = [
    "MAX_FUSED_SIZE",
    "amp_custom_bwd",
    "amp_custom_fwd",
    "calculate_settings",
    "compare_version",
    "device_context",
    "ensure_contiguous",
    "get_amp_custom_fwd_bwd",
    "get_npu_core_count",
    "is_hip",
    "set_large_grf_mode",
    "torch_to_triton_dtype",
]


@contextlib.contextmanager
def device_context(device: torch.device | str | int) -> Iterator[None]:
    """Make ``device`` current for the block (``torch.<type>.device(device)``)
    where its device type has such a context, else change nothing (CPU)."""
    device = torch.device(device)
    module = getattr(torch, device.type, None)
    context = getattr(module, "device", None)
    with context(device) if callable(context) else contextlib.nullcontext():
        yield


def ensure_contiguous(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate an autograd Function's ``forward``/``backward`` so that every
    tensor it receives after ``ctx`` (positional or keyword) is contiguous."""

    def contiguous(value: Any) -> Any:
        return value.contiguous() if isinstance(value, torch.Tensor) else value

    @functools.wraps(fn)
    def wrapper(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(ctx, *map(contiguous, args), **{k: contiguous(v) for k, v in kwargs.items()})

    return wrapper


def calculate_settings(n: int) -> tuple[int, int]:
    """(BLOCK_SIZE, num_warps) for a kernel that holds a row of ``n`` elements
    in one block: the next power of two at or above ``n`` (at most
    :data:`MAX_FUSED_SIZE`, RuntimeError above), and 4 warps, 8 from 2048
    elements, 16 from 8192, 32 from 32768 (16 on ROCm, whose wavefronts are 64 wide)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"calculate_settings: n must be a positive int, got {n!r}")
    block = 1 << (n - 1).bit_length()
    if block > MAX_FUSED_SIZE:
        raise RuntimeError(f"calculate_settings: a row of n = {n} exceeds the largest block ({MAX_FUSED_SIZE})")
    if block >= 32768:
        return block, 16 if is_hip() else 32
    if block >= 8192:
        return block, 16
    return block, 8 if block >= 2048 else 4


def compare_version(package: str, operator: Callable[[Version, Version], bool], target: str) -> bool:
    """``operator(installed version of package, Version(target))``, e.g.
    ``compare_version("triton", operator.ge, "3.0.0")``; False when the package
    is not installed or its version cannot be read. ``package`` is a
    distribution name ("pytorch-triton-xpu") or an importable module ("torch")."""
    try:
        installed = metadata.version(package)
    except metadata.PackageNotFoundError:
        try:
            installed = getattr(importlib.import_module(package), "__version__", None)
        except ImportError:
            return False
    if installed is None:
        return False
    try:
        return bool(operator(Version(str(installed)), Version(target)))
    except InvalidVersion:
        return False


def get_amp_custom_fwd_bwd() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``torch.amp.custom_fwd`` and ``custom_bwd`` bound to :func:`liger_kernel.utils.infer_device`'s
    device type: decorators that make a Function's forward and backward follow autocast."""
    device_type = infer_device()
    return (
        functools.partial(torch.amp.custom_fwd, device_type=device_type),
        functools.partial(torch.amp.custom_bwd, device_type=device_type),
    )


amp_custom_fwd, amp_custom_bwd = get_amp_custom_fwd_bwd()


class _TritonDtypes(Mapping):
    """torch dtype -> triton.language dtype; triton is imported on the first lookup."""

    _NAMES: ClassVar[dict[torch.dtype, str]] = {
        torch.float32: "float32",
        torch.float16: "float16",
        torch.bfloat16: "bfloat16",
    }

    def __getitem__(self, dtype: torch.dtype) -> Any:
        name = self._NAMES[dtype]
        import triton.language as tl

        return getattr(tl, name)

    def __iter__(self) -> Iterator[torch.dtype]:
        return iter(self._NAMES)

    def __len__(self) -> int:
        return len(self._NAMES)

    def __repr__(self) -> str:
        return f"torch_to_triton_dtype({', '.join(str(d) for d in self._NAMES)})"


#: The Triton dtype of each floating dtype the kernels take (``tl.float32``, ...).
torch_to_triton_dtype: Mapping[torch.dtype, Any] = _TritonDtypes()


def __getattr__(name: str) -> Any:
    # The Triton kernel is imported only when asked for: this module must import without triton.
    if name == "element_mul_kernel":
        from liger_kernel.triton.element_mul import element_mul_kernel

        return element_mul_kernel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
