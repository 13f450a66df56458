"""Kernel mocks: make a CPU-only process look like vendor hardware.

Each vendor module (``cuda``, ``rocm``, ``npu``, ``xpu``) offers a context manager
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
- :func:`emulate_devices` makes a torch device module (``torch.cuda``,
  ``torch.xpu``) answer for ``device_count`` emulated devices;
  :func:`cuda_runtime` adds ``torch.version`` for a CUDA-like runtime, and the
  CUDA and ROCm mocks are thin presets of it.
- :class:`LiveTileMonitor` and :func:`strict_launches` make a strict mock:
  every Triton launch under the interpreter is checked against the emulated
  device's launch limits and its on-chip memory, and a launch the device would
  refuse raises a :class:`MockLaunchError` as the device would.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

import liger_kernel
from liger_kernel.dispatch import dispatcher

#: names the plugin and ``python -m liger_conformance.run_mocked`` accept
VENDORS = ("cuda", "rocm", "npu", "xpu")

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
    prepare_interpreter()
    compiled = sorted(m for m in sys.modules if m.startswith("liger_kernel.triton."))
    if compiled:
        import warnings

        warnings.warn(
            f"TRITON_INTERPRET=1 was set after {', '.join(compiled)} had been imported; "
            "their kernels may not run under the interpreter",
            RuntimeWarning,
            stacklevel=2,
        )


def prepare_interpreter() -> None:
    """The interpreter repairs every interpreted run needs: language patching
    once per launch (:func:`patch_language_once_per_launch`) and exact bf16
    products (:func:`exact_bf16_dot`)."""
    patch_language_once_per_launch()
    exact_bf16_dot()


def exact_bf16_dot() -> None:
    """Make the interpreter's ``tl.dot`` read bf16 operands as numbers.

    The interpreter keeps bf16 values as their raw 16 bits in uint16 arrays
    and hands those to ``np.matmul`` as they are, so a bf16 product comes out
    as a product of bit patterns (~1e10 for unit values). Widening a bf16 to
    fp32 is exact (the same bits in the upper half), so the product is the
    one the hardware computes with an fp32 accumulator. Process-wide and
    idempotent; a Triton without these internals is left as it is.
    """
    try:
        import numpy as np
        import triton.language as tl
        from triton.runtime import interpreter
    except ImportError:
        return
    builder = getattr(interpreter, "InterpreterBuilder", None)
    original = getattr(builder, "create_dot", None)
    if original is None or getattr(original, "_liger_exact_bf16", False):
        return

    def widened(operand: Any) -> Any:
        if operand.dtype != tl.bfloat16:
            return operand
        bits = operand.data.astype(np.uint32) << np.uint32(16)
        return interpreter.TensorHandle(bits.view(np.float32), tl.float32)

    def create_dot(self: Any, a: Any, b: Any, d: Any, *args: Any) -> Any:
        return original(self, widened(a), widened(b), d, *args)

    create_dot._liger_exact_bf16 = True
    builder.create_dot = create_dot


class _NoPatches:
    def restore(self) -> None:
        pass


def patch_language_once_per_launch() -> None:
    """Make the interpreter patch ``triton.language`` once per launch, not once per call.

    The interpreter swaps the language's builtins for its own on every launch
    and again on every call of a ``@triton.jit`` helper inside the kernel: an
    ``inspect.getmembers`` walk over the whole language, about a millisecond,
    for a patch that is already in place (the helper's scope is never restored;
    the launch's restore undoes everything). Kernels that call a helper in a loop
    spent most of their interpreted time there. Here a helper's call patches only
    language modules the running launch has not patched yet. Process-wide and
    idempotent; a Triton without these internals is left as it is.
    """
    try:
        from triton.runtime import interpreter
    except ImportError:
        return
    original = getattr(interpreter, "_patch_lang", None)
    if original is None or getattr(original, "_liger_once_per_launch", False):
        return
    import triton.language as tl

    patched: set[int] = set()

    def language_modules(fn: Any) -> set[int]:
        return {id(value) for value in fn.__globals__.values() if value is tl or value is tl.core}

    def patch_lang(fn: Any) -> Any:
        wanted = language_modules(fn)
        if patched and wanted <= patched:
            return _NoPatches()
        scope = original(fn)
        if not patched:
            restore = scope.restore

            def restore_and_forget() -> None:
                patched.clear()
                restore()

            scope.restore = restore_and_forget
        patched.update(wanted)
        return scope

    patch_lang._liger_once_per_launch = True
    interpreter._patch_lang = patch_lang


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


def emulate_devices(p: Patches, runtime: Any, props: Any, device_count: int) -> None:
    """Make the torch device module ``runtime`` report ``device_count`` devices
    described by ``props``, with a current device, and a random state for what
    saves and restores it around traced code (AOTAutograd, checkpointing)."""
    if device_count < 1:
        raise ValueError(f"device_count must be at least 1, got {device_count}")
    current = [0]

    def index_of(device: Any = None) -> int:
        if device is None:
            return current[0]
        if isinstance(device, int):
            index = device
        else:
            # tensors stay on the CPU under a mock, so a CPU device means the current device
            index = torch.device(device).index
            index = current[0] if index is None else index
        if not 0 <= index < device_count:
            raise RuntimeError(f"invalid device ordinal {index}: the mock has {device_count} device(s)")
        return index

    def get_device_properties(device: Any = None) -> Any:
        index_of(device)
        return props

    def set_device(device: Any) -> None:
        current[0] = index_of(device)

    rng_state = [torch.get_rng_state()]
    p.setattr(runtime, "is_available", lambda: True)
    p.setattr(runtime, "device_count", lambda: device_count)
    p.setattr(runtime, "current_device", lambda: current[0])
    p.setattr(runtime, "set_device", set_device)
    p.setattr(runtime, "get_device_name", lambda device=None: get_device_properties(device).name)
    p.setattr(runtime, "get_device_properties", get_device_properties)
    p.setattr(runtime, "is_bf16_supported", lambda including_emulation=True: True)
    p.setattr(runtime, "synchronize", lambda device=None: None)
    p.setattr(runtime, "get_rng_state", lambda device=None: rng_state[0].clone())
    p.setattr(runtime, "set_rng_state", lambda new_state, device=None: rng_state.__setitem__(0, new_state.clone()))


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
    with patches() as p:
        p.setattr(torch.version, "cuda", cuda_version)
        p.setattr(torch.version, "hip", hip_version)
        emulate_devices(p, torch.cuda, props, device_count)
        p.setattr(torch.cuda, "get_device_capability", lambda device=None: (props.major, props.minor))
        with routed_as("cuda"):
            yield p


class MockLaunchError(RuntimeError):
    """A Triton launch the emulated device refuses."""


class LiveTileMonitor:
    """Checks the Triton launches made under a strict mock.

    While a launch runs, every floating-point block value (``tl.load`` results,
    ``tl.zeros`` accumulators, arithmetic on them) is counted while the program
    holds it; when the live bytes exceed ``onchip_bytes``, :meth:`overflow`
    gives the error raised. Integer offsets, masks and pointers are not
    counted. A vendor mock subclasses it with its device's rules:
    :meth:`check_grid` (the grid, before any program runs), :meth:`check_options`
    (the launch options: ``num_warps``, ...) and :meth:`overflow`. ``peak`` is
    the most live bytes any launch held, for tests that show the margin."""

    def __init__(self, onchip_bytes: int) -> None:
        self.onchip_bytes = onchip_bytes
        self.kernel: str | None = None
        # id -> (weak reference, bytes); values leave when the program drops them
        self.live: dict[int, tuple[weakref.ref[Any], int]] = {}
        self.live_bytes = 0
        self.peak = 0

    def check_grid(self, dims: tuple[int, ...]) -> None:
        """Raise a :class:`MockLaunchError` for a grid the device refuses."""

    def check_options(self, options: dict[str, Any]) -> None:
        """Raise a :class:`MockLaunchError` for launch options the device refuses."""

    def overflow(self) -> MockLaunchError:
        raise NotImplementedError

    def start(self, kernel: str, options: dict[str, Any]) -> None:
        self.kernel = kernel
        self.live, self.live_bytes = {}, 0
        self.check_options(options)

    def stop(self) -> None:
        self.kernel = None
        self.live, self.live_bytes = {}, 0

    def _drop(self, table: dict[int, Any], key: int) -> None:
        # a value from an earlier launch's table must not touch this one's count
        if table is self.live:
            entry = table.pop(key, None)
            if entry is not None:
                self.live_bytes -= entry[1]

    def track(self, handle: Any) -> None:
        data, dtype = handle.data, handle.dtype
        if self.kernel is None or getattr(data, "ndim", 0) == 0:
            return
        if not (hasattr(dtype, "is_floating") and dtype.is_floating()):
            return
        size = data.size * dtype.primitive_bitwidth // 8
        key, table = id(handle), self.live
        table[key] = (weakref.ref(handle, lambda _, key=key, table=table: self._drop(table, key)), size)
        self.live_bytes += size
        self.peak = max(self.peak, self.live_bytes)
        if self.live_bytes > self.onchip_bytes:
            raise self.overflow()


def strict_launches(p: Patches, monitor: LiveTileMonitor) -> None:
    """Patch the Triton interpreter so that every launch passes through ``monitor``."""
    from triton.runtime import interpreter

    builder = interpreter.interpreter_builder
    original_set_grid_dim = builder.set_grid_dim
    original_call = interpreter.GridExecutor.__call__
    original_post_init = interpreter.TensorHandle.__post_init__

    def set_grid_dim(nx: int, ny: int, nz: int) -> None:
        monitor.check_grid((nx, ny, nz))
        original_set_grid_dim(nx, ny, nz)

    def launch(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            # the launch options (num_warps, ...) arrive here with the arguments
            monitor.start(getattr(self.fn, "__name__", "kernel"), kwargs)
            return original_call(self, *args, **kwargs)
        except interpreter.InterpreterError as exc:
            # the interpreter wraps errors raised inside a program; surface ours as the device would
            cause = exc.__cause__
            while isinstance(cause, interpreter.InterpreterError):
                cause = cause.__cause__
            if isinstance(cause, MockLaunchError):
                raise cause from None
            raise
        finally:
            monitor.stop()

    def post_init(self: Any) -> None:
        original_post_init(self)
        monitor.track(self)

    p.setattr(builder, "set_grid_dim", set_grid_dim)
    p.setattr(interpreter.GridExecutor, "__call__", launch)
    p.setattr(interpreter.TensorHandle, "__post_init__", post_init)
