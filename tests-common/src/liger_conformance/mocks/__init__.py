"""Kernel mocks: make a CPU-only process look like vendor hardware.

Each vendor module (``cuda``, ``rocm``, ``npu``) offers a context manager
``active()``. Inside it torch's device queries answer as that hardware would,
CPU tensors are routed by the dispatcher as if they lived on the vendor's
device type, and the portable Triton kernels run on the CPU under the Triton
interpreter (``TRITON_INTERPRET=1``, which must be set before any kernel
module is imported; :func:`use_interpreter` does it).

This module holds what every mock shares:

- :class:`Patches` sets attributes (or adds missing ones, or module entries in
  ``sys.modules``) and puts every one back on exit, in reverse order.
- :func:`routed_as` makes the dispatcher treat CPU tensors as ``device_type``
  and resets its caches on entry and exit, so routes, probes and profiles
  computed under the mock never leak out of it.
- :class:`FakeDeviceProperties` stands in for ``torch.cuda.get_device_properties``'s
  result, with the fields Triton backends read.
- :func:`cuda_runtime` patches ``torch.cuda`` and ``torch.version`` for a
  CUDA-like runtime; the CUDA and ROCm mocks are thin presets of it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

import liger_kernel
from liger_kernel.dispatch import dispatcher

#: names the plugin and ``python -m liger_conformance.mock`` accept
VENDORS = ("cuda", "rocm", "npu")

_MISSING = object()


class Patches:
    """Attribute and ``sys.modules`` patches, undone in reverse order by :meth:`undo`."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def setattr(self, target: Any, name: str, value: Any) -> None:
        """Set ``target.name = value``; on undo restore the old value or delete it."""
        old = target.__dict__.get(name, _MISSING) if hasattr(target, "__dict__") else getattr(target, name, _MISSING)
        setattr(target, name, value)

        def restore() -> None:
            if old is _MISSING:
                delattr(target, name)
            else:
                setattr(target, name, old)

        self._undo.append(restore)

    def setitem(self, mapping: dict[Any, Any], key: Any, value: Any) -> None:
        """Set ``mapping[key] = value``; on undo restore the old entry or remove it."""
        old = mapping.get(key, _MISSING)
        mapping[key] = value

        def restore() -> None:
            if old is _MISSING:
                mapping.pop(key, None)
            else:
                mapping[key] = old

        self._undo.append(restore)

    def module(self, name: str, module: types.ModuleType) -> None:
        """Install ``module`` as ``sys.modules[name]`` (a stand-in for a vendor package)."""
        self.setitem(sys.modules, name, module)

    def environ(self, name: str, value: str | None) -> None:
        """Set (or, with None, remove) an environment variable until undo."""
        old = os.environ.get(name)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

        def restore() -> None:
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old

        self._undo.append(restore)

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


@contextlib.contextmanager
def patches() -> Iterator[Patches]:
    """A :class:`Patches` undone when the ``with`` block ends, however it ends."""
    found = Patches()
    try:
        yield found
    finally:
        found.undo()


@contextlib.contextmanager
def routed_as(device_type: str) -> Iterator[None]:
    """Route CPU tensors as ``device_type`` tensors, with fresh dispatcher caches."""
    with patches() as p:
        p.setitem(dispatcher.device_alias, "cpu", device_type)
        liger_kernel.reset()
        try:
            yield
        finally:
            # reset before the alias goes, so no route made under the mock survives
            liger_kernel.reset()


def use_interpreter() -> None:
    """Run Triton kernels on the CPU. Kernel modules imported before this call
    were already compiled for a real device, so a warning names them."""
    os.environ["TRITON_INTERPRET"] = "1"
    compiled = sorted(m for m in sys.modules if m.startswith("liger_kernel.triton."))
    if compiled:
        import warnings

        warnings.warn(
            f"TRITON_INTERPRET=1 was set after {', '.join(compiled)} had been imported; "
            "their kernels may not run under the interpreter",
            RuntimeWarning,
            stacklevel=2,
        )


@dataclass(frozen=True)
class FakeDeviceProperties:
    """What ``torch.cuda.get_device_properties`` returns, as far as kernels look.

    ``warp_size`` is 32 on NVIDIA and 64 (the wavefront) on AMD;
    ``multi_processor_count`` counts SMs or compute units; ``gcnArchName`` is
    set on ROCm builds only.
    """

    name: str
    major: int
    minor: int
    multi_processor_count: int
    total_memory: int
    warp_size: int
    shared_memory_per_block_optin: int
    shared_memory_per_block: int = 48 * 1024
    shared_memory_per_multiprocessor: int = 228 * 1024
    max_threads_per_multi_processor: int = 2048
    regs_per_multiprocessor: int = 65536
    L2_cache_size: int = 50 * 1024 * 1024
    is_integrated: bool = False
    is_multi_gpu_board: bool = False
    gcnArchName: str | None = None


@contextlib.contextmanager
def cuda_runtime(
    props: FakeDeviceProperties,
    *,
    cuda_version: str | None,
    hip_version: str | None,
    device_count: int = 1,
) -> Iterator[Patches]:
    """Make ``torch.cuda`` report ``device_count`` GPUs described by ``props``
    and ``torch.version`` a CUDA (``cuda_version``) or ROCm (``hip_version``)
    build; CPU tensors route as ``cuda`` tensors. Yields the patches so a
    vendor mock can add its own before the block runs."""
    if device_count < 1:
        raise ValueError(f"device_count must be at least 1, got {device_count}")
    current = [0]

    def index_of(device: Any = None) -> int:
        if device is None:
            return current[0]
        if isinstance(device, int):
            index = device
        else:
            # tensors stay on the CPU under a mock, so a CPU device means the current GPU
            index = torch.device(device).index
            index = current[0] if index is None else index
        if not 0 <= index < device_count:
            raise RuntimeError(f"invalid device ordinal {index}: the mock has {device_count} device(s)")
        return index

    def get_device_properties(device: Any = None) -> FakeDeviceProperties:
        index_of(device)
        return props

    def set_device(device: Any) -> None:
        current[0] = index_of(device)

    cuda = torch.cuda
    with patches() as p:
        p.setattr(torch.version, "cuda", cuda_version)
        p.setattr(torch.version, "hip", hip_version)
        p.setattr(cuda, "is_available", lambda: True)
        p.setattr(cuda, "device_count", lambda: device_count)
        p.setattr(cuda, "current_device", lambda: current[0])
        p.setattr(cuda, "set_device", set_device)
        p.setattr(cuda, "get_device_name", lambda device=None: get_device_properties(device).name)
        p.setattr(cuda, "get_device_properties", get_device_properties)
        p.setattr(cuda, "get_device_capability", lambda device=None: (props.major, props.minor))
        p.setattr(cuda, "is_bf16_supported", lambda including_emulation=True: True)
        p.setattr(cuda, "synchronize", lambda device=None: None)
        # The emulated device's random state, for what saves and restores it
        # around traced code (AOTAutograd, checkpointing); nothing draws from it.
        rng_state = [torch.get_rng_state()]
        p.setattr(cuda, "get_rng_state", lambda device="cuda": rng_state[0].clone())
        p.setattr(cuda, "set_rng_state", lambda new_state, device="cuda": rng_state.__setitem__(0, new_state.clone()))
        with routed_as("cuda"):
            yield p
