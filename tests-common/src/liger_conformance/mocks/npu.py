"""An Ascend NPU (Atlas A2, 910B-class) on a CPU-only machine, strictly.

``active()`` installs a ``torch_npu`` stand-in module and a ``torch.npu``
namespace (availability, device count, current device, device name and
properties: AI-core and vector-core counts, unified-buffer size), makes
``triton.runtime.driver.active.utils.get_device_properties(index)`` answer as
triton-ascend's driver does (a dict with ``num_aicore`` and
``num_vectorcore``), routes CPU tensors as ``npu`` tensors and runs kernels
under the Triton interpreter (``TRITON_INTERPRET=1``).

Strict, as the device is, for every kernel launched while it is active:

* grid: a launch of more than :data:`MAX_GRID` (65535) programs, counting all
  grid axes together as the runtime's ``coreDim`` does, raises
  :class:`GridLimitError` before any program runs;
* dtypes: a launch that passes a float64 or fp8 tensor raises
  :class:`UnsupportedDtypeError`, as triton-ascend's front end refuses to
  compile such a kernel ("[fp8, fp64] is unsupported on Ascend");
* unified buffer: a launch of a kernel that liger-ascend's UB calibration
  knows (``liger_kernel_ascend.ub_calibration``: the bytes bishengir's memory
  planning allocates for it, index tiles, masks, DMA double buffers and
  scratch included, fitted per kernel, dtype and constexpr variant) needs
  what the calibration says for its constexprs; above the emulated UB it
  raises :class:`UBOverflowError` before any program runs, as the compiler
  refuses it ("ub overflow, requires N bits while M bits available"). Any
  other kernel (the portable ones, a test's own) is checked by what the
  compiler must hold at the least: its floating-point block values
  (``tl.load`` results, ``tl.zeros`` accumulators, arithmetic on them),
  tracked while the program holds them, the error raised when their live
  bytes exceed the UB. That count leaves out index tiles, masks and double
  buffers, so it passes kernels the compiler may refuse.
* row pitch: a 2-D tile load or store whose row stride is not a multiple of
  :data:`PITCH_ALIGN_BYTES` (32) bytes raises :class:`MisalignedPitchError`,
  as the A3 vector cores fault on such a DMA (the mask does not matter: the
  transfer is issued with the pitch).

The monitor also records, without refusing anything, what tests of the
kernels' structure look at: ``launches`` (kernel names, in order) and
``vector_int_compares`` (per kernel, how many integer compares of a block
ran: A2/A3 vector cores have no integer compare, so each one is scalarised)
and ``discrete_loads`` (per kernel, how many block loads had addresses that
are not an affine function of the lane index: the compiler lowers such a
gather to one scalar load per lane, ``DiscreteMemAccess``).

Like every mock, it says it is active in one way only: CPU tensors route as
``npu`` tensors (:func:`liger_conformance.mocks.routed_as`). With
``TRITON_INTERPRET=1`` that is what ``dispatcher.mocked("npu")`` reports, and
liger_kernel_ascend.safety then skips its check that ``triton`` is
triton-ascend: the interpreter CI runs comes from NVIDIA's wheel.
"""

from __future__ import annotations

import contextlib
import re
import sys
import types
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from liger_conformance.mocks import Patches, patches, routed_as

#: The runtime rejects launches of more programs than this.
MAX_GRID = 65535


class NPULaunchError(RuntimeError):
    """A launch the emulated NPU refuses."""


class GridLimitError(NPULaunchError):
    pass


class UBOverflowError(NPULaunchError):
    pass


class UnsupportedDtypeError(NPULaunchError):
    pass


class MisalignedPitchError(NPULaunchError):
    pass


#: A 2-D tile's row pitch must be a multiple of this many bytes on the A3 vector cores.
PITCH_ALIGN_BYTES = 32

_INT_COMPARES = tuple(
    f"create_icmp{kind}" for kind in ("SLE", "SLT", "SGE", "SGT", "ULE", "ULT", "UGE", "UGT", "EQ", "NE")
)


#: Tensor dtypes triton-ascend refuses to compile for the NPU.
UNSUPPORTED_DTYPES = frozenset(
    getattr(torch, name)
    for name in ("float64", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
    if hasattr(torch, name)
)


def check_dtypes(kernel: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a launch that hands the kernel a tensor of a dtype the NPU compiler rejects."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor) and value.dtype in UNSUPPORTED_DTYPES:
            raise UnsupportedDtypeError(
                f"{kernel}: a {value.dtype} tensor argument; [fp8, fp64] is unsupported on Ascend "
                "(triton-ascend refuses to compile the kernel)"
            )


@dataclass(frozen=True)
class FakeNPUProperties:
    """What ``torch.npu.get_device_properties`` returns, as far as kernels look
    (``ub_size`` is the mock's own addition: bytes of unified buffer per vector core)."""

    name: str
    total_memory: int
    cube_core_num: int
    vector_core_num: int
    L2_cache_size: int
    ub_size: int


ASCEND_910B3 = FakeNPUProperties(
    name="Ascend910B3 (liger-conformance mock)",
    total_memory=64 * 1024**3,
    cube_core_num=20,
    vector_core_num=40,
    L2_cache_size=192 * 1024**2,
    ub_size=192 * 1024,
)


class _FakeNPUUtils:
    def __init__(self, props: FakeNPUProperties) -> None:
        self._props = props

    def get_device_properties(self, device: Any) -> dict[str, Any]:
        return {"num_aicore": self._props.cube_core_num, "num_vectorcore": self._props.vector_core_num}


class _FakeNPUDriver:
    """The parts of triton-ascend's active driver that kernels query."""

    def __init__(self, props: FakeNPUProperties) -> None:
        self.utils = _FakeNPUUtils(props)

    def get_current_device(self) -> int:
        return 0

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cpu")


def calibrated_bytes(executor: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """UB bytes the compiler allocates for this launch (the interpreter's
    ``GridExecutor`` and its arguments) per liger-ascend's calibration, or
    None when the calibration does not know the kernel (or liger-ascend is absent)."""
    try:
        from liger_kernel_ascend import ub_calibration
    except ImportError:
        return None
    name = ub_calibration.kernel_name(executor.fn)
    if ub_calibration.tiles(name) is None:
        return None
    bound = {**dict(zip(executor.arg_names, args)), **kwargs}
    constants = {k: bound[k] for k in executor.constexprs if k in bound}
    # the dtype the launcher planned for: the kernel's first pointer argument
    first = next(bound[k] for k in executor.arg_names if isinstance(bound.get(k), torch.Tensor))
    return ub_calibration.launch_bytes(name, ub_calibration.triton_dtype(first.dtype), constants)


class _LaunchMonitor:
    """Checks each launch against the emulated UB: by the calibrated bytes of
    the kernel when liger-ascend's calibration knows it, else by the
    floating-point values alive in the program.

    ``peak`` is the most bytes any launch needed since the mock became
    active (tests read it to show how close the kernels come to the UB)."""

    def __init__(self, ub_bytes: int) -> None:
        self.ub_bytes = ub_bytes
        self.kernel: str | None = None
        # id -> (weak reference, bytes); values leave when the program drops them
        self.live: dict[int, tuple[weakref.ref[Any], int]] = {}
        self.live_bytes = 0
        self.peak = 0
        self.launches: list[str] = []
        self.vector_int_compares: dict[str, int] = {}
        self.discrete_loads: dict[str, int] = {}
        # the interpreter's own overflow guards compare too; they are not the kernel's
        self.guarding = False
        #: bytes of the running launch per the calibration (None: counted by live values)
        self.calibrated: int | None = None

    def start(self, kernel: str, calibrated: int | None = None) -> None:
        self.kernel = kernel
        self.launches.append(kernel)
        self.live, self.live_bytes = {}, 0
        self.calibrated = calibrated
        if calibrated is not None:
            self.peak = max(self.peak, calibrated)
            if calibrated > self.ub_bytes:
                raise UBOverflowError(
                    f"{kernel}: ub overflow, requires {calibrated * 8} bits while {self.ub_bytes * 8} bits "
                    f"available (the compiler's allocation for these constexprs, per liger-ascend's UB "
                    f"calibration: {calibrated} bytes; unified buffer: {self.ub_bytes} bytes)"
                )

    def stop(self) -> None:
        self.kernel = None
        self.live, self.live_bytes = {}, 0
        self.calibrated = None

    def _drop(self, table: dict[int, Any], key: int) -> None:
        # a value from an earlier launch's table must not touch this one's count
        if table is self.live:
            entry = table.pop(key, None)
            if entry is not None:
                self.live_bytes -= entry[1]

    def check_grid(self, dims: tuple[int, ...]) -> None:
        programs = 1
        for dim in dims:
            programs *= int(dim)
        if programs > MAX_GRID:
            raise GridLimitError(
                f"{self.kernel or 'kernel'}: grid {tuple(int(d) for d in dims)} launches {programs} programs; "
                f"grid should be less than {MAX_GRID + 1} on the NPU"
            )

    def count_compare(self, lhs: Any) -> None:
        if self.kernel is not None and not self.guarding and getattr(lhs.data, "size", 1) > 1:
            self.vector_int_compares[self.kernel] = self.vector_int_compares.get(self.kernel, 0) + 1

    def count_discrete(self, pointers: Any) -> None:
        """Record a block load whose addresses do not step evenly along every axis."""
        addresses = pointers.data
        if self.kernel is None or getattr(addresses, "size", 1) < 3:
            return
        addresses = addresses.astype(np.int64)
        for axis in range(addresses.ndim):
            steps = np.diff(addresses, axis=axis)
            if steps.size and (steps != steps.flat[0]).any():
                self.discrete_loads[self.kernel] = self.discrete_loads.get(self.kernel, 0) + 1
                return

    def check_pitch(self, pointers: Any, access: str) -> None:
        """Refuse a 2-D tile access whose row pitch is not 32-byte aligned."""
        addresses = pointers.data
        if self.kernel is None or getattr(addresses, "ndim", 0) < 2:
            return
        if addresses.shape[-2] < 2 or addresses.shape[-1] < 2:
            return
        first = (0,) * (addresses.ndim - 2)
        pitch = int(addresses[(*first, 1, 0)]) - int(addresses[(*first, 0, 0)])
        if pitch % PITCH_ALIGN_BYTES:
            raise MisalignedPitchError(
                f"{self.kernel}: 2-D tile {access} of shape {tuple(addresses.shape)} with a row pitch of {pitch} "
                f"bytes, not a multiple of {PITCH_ALIGN_BYTES}; the A3 vector cores fault on it"
            )

    def track(self, handle: Any) -> None:
        data, dtype = handle.data, handle.dtype
        if self.kernel is None or self.calibrated is not None or getattr(data, "ndim", 0) == 0:
            return
        if not (hasattr(dtype, "is_floating") and dtype.is_floating()):
            return
        size = data.size * dtype.primitive_bitwidth // 8
        key, table = id(handle), self.live
        table[key] = (weakref.ref(handle, lambda _, key=key, table=table: self._drop(table, key)), size)
        self.live_bytes += size
        self.peak = max(self.peak, self.live_bytes)
        if self.live_bytes > self.ub_bytes:
            raise UBOverflowError(
                f"{self.kernel}: ub overflow, requires {self.live_bytes * 8} bits while {self.ub_bytes * 8} bits "
                f"available (floating-point values alive at once: {self.live_bytes} bytes; unified buffer: "
                f"{self.ub_bytes} bytes)"
            )


#: The monitor of the innermost active mock (None outside any).
monitor: _LaunchMonitor | None = None


def _strict_launches(p: Patches, ub_bytes: int) -> None:
    """Patch the Triton interpreter so launches obey the NPU's grid and UB limits."""
    from triton.runtime import interpreter

    watch = _LaunchMonitor(ub_bytes)
    p.setattr(sys.modules[__name__], "monitor", watch)
    builder = interpreter.interpreter_builder
    original_set_grid_dim = builder.set_grid_dim
    original_call = interpreter.GridExecutor.__call__
    original_post_init = interpreter.TensorHandle.__post_init__
    original_load = builder.create_masked_load
    original_store = builder.create_masked_store

    def set_grid_dim(nx: int, ny: int, nz: int) -> None:
        watch.check_grid((nx, ny, nz))
        original_set_grid_dim(nx, ny, nz)

    def launch(self: Any, *args: Any, **kwargs: Any) -> Any:
        check_dtypes(getattr(self.fn, "__name__", "kernel"), args, kwargs)
        try:
            watch.start(getattr(self.fn, "__name__", "kernel"), calibrated_bytes(self, args, kwargs))
            return original_call(self, *args, **kwargs)
        except interpreter.InterpreterError as exc:
            # the interpreter wraps errors raised inside a program; surface ours as the device would
            cause = exc.__cause__
            while isinstance(cause, interpreter.InterpreterError):
                cause = cause.__cause__
            if isinstance(cause, NPULaunchError):
                raise cause from None
            raise
        finally:
            watch.stop()

    def post_init(self: Any) -> None:
        original_post_init(self)
        watch.track(self)

    # the cache and eviction arguments after the pointers differ between Triton releases: passed on as given
    def masked_load(ptrs: Any, *rest: Any) -> Any:
        watch.check_pitch(ptrs, "load")
        watch.count_discrete(ptrs)
        return original_load(ptrs, *rest)

    def masked_store(ptrs: Any, *rest: Any) -> Any:
        watch.check_pitch(ptrs, "store")
        return original_store(ptrs, *rest)

    def counted(compare: Any) -> Any:
        def run(lhs: Any, rhs: Any) -> Any:
            watch.count_compare(lhs)
            return compare(lhs, rhs)

        return run

    from triton.language.semantic import TritonSemantic

    original_guard = TritonSemantic.binary_op_sanitize_overflow_impl

    def overflow_guard(self: Any, *args: Any, **kwargs: Any) -> Any:
        watch.guarding = True
        try:
            return original_guard(self, *args, **kwargs)
        finally:
            watch.guarding = False

    p.setattr(TritonSemantic, "binary_op_sanitize_overflow_impl", overflow_guard)
    for name in _INT_COMPARES:
        p.setattr(builder, name, counted(getattr(builder, name)))
    p.setattr(builder, "set_grid_dim", set_grid_dim)
    p.setattr(builder, "create_masked_load", masked_load)
    p.setattr(builder, "create_masked_store", masked_store)
    p.setattr(interpreter.GridExecutor, "__call__", launch)
    p.setattr(interpreter.TensorHandle, "__post_init__", post_init)


def _torch_npu_module(npu: types.ModuleType) -> types.ModuleType:
    module = types.ModuleType("torch_npu")
    module.__doc__ = "Stand-in for torch_npu installed by liger_conformance.mocks.npu."
    release = re.match(r"\d+(\.\d+)*", torch.__version__)
    module.__version__ = release.group(0) if release else torch.__version__
    module.npu = npu
    return module


def _npu_namespace(props: FakeNPUProperties, device_count: int) -> types.ModuleType:
    current = [0]

    def index_of(device: Any = None) -> int:
        if device is None:
            return current[0]
        if isinstance(device, int):
            index = device
        else:
            # tensors stay on the CPU under the mock, so a CPU device means the current NPU
            index = torch.device(device).index
            index = current[0] if index is None else index
        if not 0 <= index < device_count:
            raise RuntimeError(f"invalid device ordinal {index}: the mock has {device_count} NPU(s)")
        return index

    def get_device_properties(device: Any = None) -> FakeNPUProperties:
        index_of(device)
        return props

    def set_device(device: Any) -> None:
        current[0] = index_of(device)

    npu = types.ModuleType("torch.npu")
    npu.is_available = lambda: True
    npu.device_count = lambda: device_count
    npu.current_device = lambda: current[0]
    npu.set_device = set_device
    npu.get_device_name = lambda device=None: get_device_properties(device).name
    npu.get_device_properties = get_device_properties
    npu.is_bf16_supported = lambda: True
    npu.synchronize = lambda device=None: None
    return npu


@contextlib.contextmanager
def active(props: FakeNPUProperties = ASCEND_910B3, device_count: int = 1, strict: bool = True) -> Iterator[None]:
    """Look like ``device_count`` NPUs described by ``props`` until the block ends.

    With ``strict`` (the default) every Triton launch must respect the grid
    limit and ``props.ub_size``, or it raises :class:`NPULaunchError`."""
    if device_count < 1:
        raise ValueError(f"device_count must be at least 1, got {device_count}")
    npu = _npu_namespace(props, device_count)
    with patches() as p:
        p.environ("TRITON_INTERPRET", "1")
        p.setattr(torch, "npu", npu)
        p.module("torch.npu", npu)
        p.module("torch_npu", _torch_npu_module(npu))
        try:
            from triton.runtime.driver import driver
        except ImportError:  # no triton here: nothing can launch, only routing is mocked
            driver = None
        if driver is not None:
            p.setattr(driver, "_active", _FakeNPUDriver(props))
            if strict:
                _strict_launches(p, props.ub_size)
        with routed_as("npu"):
            yield
