"""Launch sizing shared by the portable Triton kernels and by vendor kernels (a small, stable, public API).

``row_block(width, profile) -> int``
    Columns a row kernel handles per step: the next power of two >= ``width``
    (at least 16), capped at ``profile.max_block``. When ``row_block(...) >=
    width`` the whole row fits one block and the kernel keeps it in registers;
    otherwise the kernel walks the row in blocks.
``as_rows(x) -> torch.Tensor``
    ``x`` seen as a 2-D ``(rows, width)`` tensor over its last dimension, a view
    where possible, whose last dimension has unit stride (the row stride may be
    anything, so pass ``rows.stride(0)`` to the kernel).
``row_launch(profile, n_rows, width) -> RowLaunch``
    ``(grid, block, num_warps)`` for a persistent row kernel: ``grid`` is
    ``profile.grid(n_rows)``, ``block`` is ``row_block``, ``num_warps`` is
    ``profile.num_warps(block)``.
``tile_launch(profile, n_elements) -> RowLaunch``
    ``(grid, block, num_warps)`` for a persistent elementwise kernel over a flat
    range of ``n_elements``: tiles of ``min(TILE, profile.max_block)`` elements,
    ``grid`` is ``profile.grid(number of tiles)``.
``register_block(profile, width, bytes_per_element) -> int``
    Block of a kernel that keeps ``bytes_per_element`` bytes per column of its
    block live in registers: ``row_block(width, profile)``, further capped to
    the widest power of two that ``profile.register_budget()`` holds at
    ``bytes_per_element`` each (at least MIN_BLOCK).
``pipeline_stages(profile, bytes_per_step) -> int``
    ``num_stages`` for ``tl.range`` over a persistent loop whose every step
    loads ``bytes_per_step``: ``profile.pipeline_stages`` (the loads of the
    next steps are issued into buffers while this step computes, which keeps
    more bytes in flight per program) when those ``stages - 1`` buffers fit
    this program's share of on-chip memory (``profile.onchip_bytes /
    profile.programs_per_unit``), else 1 (no pipelining).
``shaped(t, shape) -> torch.Tensor``
    ``t`` viewed as ``shape``, or ``t`` itself when it has that shape already
    (a view costs a few microseconds of host time per call, and the norms are
    bound by host time at training sizes).
``reduction_grid(profile, n_rows) -> int``
    Grid of a row kernel that also sums over rows (the norms' dW):
    ``profile.reduction_programs_per_unit`` programs per compute unit (one by
    default), so its per-program partial sums stay a small buffer.
``launch(profile, kernel, grid, *args, **meta) -> None``
    ``kernel[(grid,)](*args, **meta)`` with less host time: where the profile
    says ``direct_launch`` (NVIDIA), and not under the Triton interpreter,
    the compiled kernel of each specialization is kept and its C launcher
    called directly with the current stream, skipping Triton's argument
    binding, cache lookup and per-call runner (the norms, rope and the MoE
    experts are bound by host time at training sizes on a slow host). The key
    holds everything Triton specializes on: tensor dtypes and 16-byte
    alignment, integers equal to 1, divisible by 16 and their width, the
    constexprs and the launch options, and the current device. Runtime
    arguments come first and constexprs by keyword, as in every kernel here.
``accumulator_dtype(dtype) -> tl.dtype`` / ``statistics_dtype(dtype) -> torch.dtype``
    What a kernel computes and keeps per-row statistics in for inputs of
    ``dtype``: fp32 for 16- and 32-bit floats, fp64 for fp64.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import torch
import triton.language as tl
from triton.runtime.jit import JITFunction

from liger_kernel.backend import DeviceProfile

MIN_BLOCK = 16
#: Elements per tile of the elementwise kernels. ``profile.num_warps`` gives
#: such a tile the most warps a program may have (32 on NVIDIA; 16 of 64 lanes
#: on AMD) and 8 contiguous elements per thread (one 16-byte vector load of a
#: 16-bit dtype). A streaming kernel needs many bytes in flight per SM to
#: approach the memory bandwidth; big tiles give that even where only one or
#: two persistent programs are resident per SM (sm_90: the gate kernels
#: compile to 31-44 registers per thread, so one or two 1024-thread programs).
TILE = 8192


def row_block(width: int, profile: DeviceProfile) -> int:
    block = MIN_BLOCK
    while block < width and block < profile.max_block:
        block *= 2
    return block


def register_block(profile: DeviceProfile, width: int, bytes_per_element: int) -> int:
    budget = max(MIN_BLOCK, profile.register_budget() // bytes_per_element)
    return min(row_block(width, profile), 1 << (budget.bit_length() - 1))


def as_rows(x: torch.Tensor) -> torch.Tensor:
    rows = x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x
    if rows.stride(-1) != 1 and rows.shape[-1] > 1:
        rows = rows.contiguous()
    return rows


def shaped(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return t if t.shape == shape else t.view(shape)


class RowLaunch(NamedTuple):
    grid: int
    block: int
    num_warps: int


def row_launch(profile: DeviceProfile, n_rows: int, width: int) -> RowLaunch:
    block = row_block(width, profile)
    return RowLaunch(profile.grid(n_rows), block, profile.num_warps(block))


def tile_launch(profile: DeviceProfile, n_elements: int) -> RowLaunch:
    block = min(TILE, profile.max_block)
    tiles = -(-n_elements // block)
    return RowLaunch(profile.grid(tiles), block, profile.num_warps(block))


_INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
_INT32 = (-(2**31), 2**31)


def _specialization(value: Any) -> Any:
    kind = type(value)  # exact types first: bool is an int, a Parameter a Tensor
    if kind is int:
        return value == 1, value % 16 == 0, _INT32[0] <= value < _INT32[1], value >= 2**63
    if kind is float:
        return float
    if isinstance(value, torch.Tensor):
        return value.dtype, value.data_ptr() % 16 == 0
    return value


class _DirectLauncher:
    """Compiled kernels of one JIT function by specialization (see ``launch``).

    A hit costs the key and one call of the compiled kernel's C launcher with
    the current stream: Triton's per-call runner (a closure built per launch,
    the device and stream lookups through its driver proxy, the launch
    metadata) is skipped unless a launch hook is installed (a profiler such as
    Proton wants the metadata), and the constexpr values are kept per key."""

    def __init__(self, kernel: JITFunction) -> None:
        self.kernel = kernel
        self.names = tuple(param.name for param in kernel.params)
        self.entries: dict[tuple[Any, ...], Any] = {}

    def __call__(self, grid: int, args: tuple[Any, ...], meta: dict[str, Any]) -> None:
        device = torch.cuda.current_device()
        key = (device, tuple(meta.items()), *map(_specialization, args))
        entry = self.entries.get(key)
        if entry is None:
            compiled = self.kernel[(grid,)](*args, **meta)
            trailing = self.names[len(args) :]
            # a defaulted parameter left to Triton to bind, or no compiled kernel returned (a
            # launch recorder standing in for Triton's run): that call site keeps the JIT path
            self.entries[key] = (
                _JIT
                if compiled is None or any(name not in meta for name in trailing)
                else (
                    compiled,
                    tuple(meta[name] for name in trailing),
                )
            )
            return
        if entry is _JIT:
            self.kernel[(grid,)](*args, **meta)
            return
        compiled, constants = entry
        if _RUNTIME is None or _RUNTIME.launch_enter_hook is not None or _RUNTIME.launch_exit_hook is not None:
            compiled[(grid, 1, 1)](*args, *constants)
            return
        compiled.run(grid, 1, 1, _current_stream(device), compiled.function, compiled.packed_metadata, None,
                     None, None, *args, *constants)  # fmt: skip


_JIT = object()
try:
    from triton import knobs as _knobs

    _RUNTIME = _knobs.runtime
except ImportError:  # Triton < 3.4: no knobs, launch through the compiled kernel's runner
    _RUNTIME = None
_current_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None) or (
    lambda device: torch.cuda.current_stream(device).cuda_stream
)


_LAUNCHERS: dict[JITFunction, _DirectLauncher] = {}


def launch(profile: DeviceProfile, kernel: Any, grid: int, *args: Any, **meta: Any) -> None:
    if _INTERPRETED or not profile.direct_launch or not isinstance(kernel, JITFunction):
        kernel[(grid,)](*args, **meta)
        return
    launcher = _LAUNCHERS.get(kernel)
    if launcher is None:
        launcher = _LAUNCHERS[kernel] = _DirectLauncher(kernel)
    launcher(grid, args, meta)


def reduction_grid(profile: DeviceProfile, n_rows: int) -> int:
    programs = profile.compute_units * profile.reduction_programs_per_unit
    return max(1, min(n_rows, programs, profile.max_grid))


def pipeline_stages(profile: DeviceProfile, bytes_per_step: int) -> int:
    stages = profile.pipeline_stages
    budget = profile.onchip_bytes // profile.programs_per_unit
    return stages if (stages - 1) * bytes_per_step <= budget else 1


def statistics_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def accumulator_dtype(dtype: torch.dtype) -> tl.dtype:
    return tl.float64 if dtype == torch.float64 else tl.float32
