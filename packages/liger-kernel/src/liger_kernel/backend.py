"""What a backend distribution tells the core about itself.

A vendor distribution declares one entry point in the group
``liger_kernel.backends``; loading it yields a :class:`Backend`. Everything in
it is cheap to build: the probe uses torch only, and op implementations are
named as ``"module:attr"`` strings that the dispatcher imports on first use,
so discovering and probing a backend never imports ``triton`` or ``torch_npu``.

A backend for Triton hardware also names a :class:`DeviceProfile` factory; the
portable Triton kernels in :mod:`liger_kernel.triton` size their grids and
tiles from it. Such a backend usually sets ``portable=True`` and lists in
``functions`` only the ops it overrides. What must hold before its kernels
are imported (the right Triton build, matching vendor packages) is its
``prepare`` step, which the dispatcher runs once, before the first import.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from liger_kernel.triton import portable_ops

#: Version of the contract between the core and backend distributions. A
#: backend built for another version is refused with both numbers named.
API_VERSION = 1

Probe = Callable[[], "tuple[bool, str]"]


@dataclass(frozen=True)
class Backend:
    """Description of one backend.

    name: what users type in ``LIGER_KERNEL_BACKEND`` (``"cuda"``, ``"ascend"``).
    device_types: the torch device types it serves (``("cuda",)``); ``("*",)``
        means any device (only the pure-PyTorch ``torch`` backend says that).
    priority: among backends whose probe passes for one device type, the
        highest wins; two at the same priority are a configuration error.
    api_version: the :data:`API_VERSION` the backend was written against.
    probe: returns ``(ok, reason)`` using torch only; ``reason`` says why not,
        or what was found.
    functions: op name -> ``"module:attr"`` of the backend's own
        ``torch.autograd.Function`` for that op, with the signature of the
        public ``liger_kernel.ops`` Function. ``ops`` is its former name, still
        accepted by the constructor and readable.
    portable: True: every op not in ``functions`` runs liger-kernel's portable
        Triton kernel (:data:`liger_kernel.triton.PORTABLE_FUNCTIONS`), sized
        by ``profile``. Ops neither listed nor portable fall back to the
        ``torch`` backend. :attr:`implementations` is the resulting table.
    prepare: ``"module:attr"`` of ``f() -> None``, run once by the dispatcher
        before it imports the first of this backend's op implementations; it
        raises (ideally ImportError, saying how to repair) when they cannot
        run here. None: nothing to prepare.
    install_hint: the command that installs this backend.
    profile: ``"module:attr"`` of ``f(device) -> DeviceProfile`` for Triton
        backends, else None.
    runtime_versions: ``"module:attr"`` of ``f() -> dict[str, str]`` giving the
        vendor runtime packages' versions for ``liger-kernel info``.
    conformance: ``"module:attr"`` of the :class:`Conformance` declarations the
        shared conformance suite reads.
    aliases: other names it may be requested by: the implementation names of
        liger-kernel 0.8.5's registry (``"nvidia-triton"``), the first being the
        one :mod:`liger_kernel.backends` reports it by. A name of an installed
        backend takes precedence over an alias.
    per_op: True for a backend that only supplements others, op by op (what
        :func:`liger_kernel.backends.register_impl` makes): it is never the
        backend of a device type; automatic selection gives it an op it
        implements where it outranks the backend chosen for the device type,
        and an op it lacks is routed as if it had not been requested.
    """

    name: str
    device_types: tuple[str, ...]
    priority: int
    api_version: int
    probe: Probe
    functions: Mapping[str, str] = field(default_factory=dict)
    install_hint: str = ""
    profile: str | None = None
    runtime_versions: str | None = None
    conformance: str | None = None
    portable: bool = False
    prepare: str | None = None
    aliases: tuple[str, ...] = ()
    per_op: bool = False

    def __post_init__(self) -> None:
        if self.portable and self.profile is None:
            raise ValueError(f"backend {self.name!r}: portable=True needs a profile to size the portable kernels")

    def serves(self, device_type: str) -> bool:
        return "*" in self.device_types or device_type in self.device_types

    @functools.cached_property
    def implementations(self) -> Mapping[str, str]:
        """op -> ``"module:attr"`` of what the dispatcher routes the op to:
        ``functions`` over the portable kernels when ``portable``."""
        return {**portable_ops(), **self.functions} if self.portable else dict(self.functions)

    @property
    def ops(self) -> Mapping[str, str]:
        """Former name of :attr:`functions` (backends written for liger-kernel 0.9.0)."""
        return self.functions


_dataclass_init = Backend.__init__


@functools.wraps(_dataclass_init)
def _init(self: Backend, *args: Any, ops: Mapping[str, str] | None = None, **kwargs: Any) -> None:
    # ``ops=`` is what backends written for liger-kernel 0.9.0 pass
    if ops is not None:
        if "functions" in kwargs:
            raise TypeError("Backend() takes functions= or its former name ops=, not both")
        kwargs["functions"] = ops
    _dataclass_init(self, *args, **kwargs)


Backend.__init__ = _init  # type: ignore[method-assign]


@dataclass(frozen=True)
class DeviceProfile:
    """The hardware facts a portable Triton kernel needs to size its launch.

    compute_units: SMs (NVIDIA), CUs (AMD) or vector cores (Ascend); the
        persistent grid is ``min(work items, compute_units * programs_per_unit)``.
    warp_size: threads that execute in lock-step (32 NVIDIA, 64 AMD).
    max_num_warps: the most warps one program may use (1024 threads / warp_size).
    max_grid: largest grid size along axis 0 the launcher accepts.
    onchip_bytes: per-program on-chip budget a tile must fit (shared memory,
        or the Ascend unified buffer less a safety margin).
    register_bytes: per-program budget of the blocks a kernel keeps in
        registers (the vocabulary kernels: cross-entropy, JSD, KL-div, TVD),
        where that is another resource than ``onchip_bytes`` (AMD: 512 KiB of
        VGPRs per CU against 64 KiB of LDS). None: ``onchip_bytes``, the budget
        those kernels were measured with on NVIDIA, and where the blocks do
        live on Ascend (the unified buffer). See :meth:`register_budget`.
    max_block: largest power-of-two block of elements a program handles in one
        step; wider rows are walked in several steps.
    programs_per_unit: persistent programs per compute unit.
    uses_num_warps: False where the compiler ignores num_warps (Ascend).
    direct_launch: True where the Triton build lets a compiled kernel be
        relaunched directly, skipping argument binding (NVIDIA); see
        ``liger_kernel.triton.launch.launch``.
    pipeline_stages: ``num_stages`` of the persistent loops whose loads feed
        no ``tl.dot`` (every loop here). Triton on sm_90 pipelines such loads
        through shared memory, and only from 3 stages on; Triton's AMD backend
        prefetches them into registers instead, so there a stage costs VGPRs.
        1 turns pipelining off. See ``liger_kernel.triton.launch.pipeline_stages``.

    Tuning, choices a backend measures per architecture (the defaults are the
    choices measured on an H100; liger-cuda's profile records where each came
    from):

    gate_tile: elements per program of the SwiGLU / GEGLU kernels.
    reduction_programs_per_unit: programs per compute unit of the row kernels
        that also sum over rows (the norms' weight gradients); each program
        keeps one partial row, so more programs mean a larger buffer to add up.
    vocab_programs_per_unit: programs per compute unit of the cross-entropy
        kernels, which walk rows as wide as the vocabulary.
    lm_head_chunk_ratio: fused linear cross-entropy's chunk of logits holds
        this many times as many elements as its input (tokens x hidden):
        larger chunks make the weight-gradient GEMM read and write that
        gradient fewer times, smaller ones take less memory.
    lm_head_row_multiple: that chunk's rows are a multiple of this (the GEMM
        tile along the tokens, so no tile is padded).
    lm_head_min_rows: the fewest rows such a chunk holds (unless the batch has
        fewer): each chunk reads and writes the whole weight gradient once, so
        the weight-gradient GEMM needs enough rows (its inner dimension) to be
        bound by the matrix units rather than by that traffic. With an fp32
        gradient a chunk of R rows does R / 4 flops per byte of it, against the
        ~200 flops per byte at which an H200's bf16 matrix units stop waiting
        on memory. Where the vocabulary is large against the hidden size the
        ratio alone gives tiny chunks: a Qwen3-MoE of hidden 1024 and vocabulary
        151936 at 4096 tokens got 64-row chunks, and its loss's GEMMs took 27.5
        ms per step on an H200 for ~5 ms of arithmetic (the weight gradient
        re-read 64 times); 512 rows read it 8 times.
    """

    name: str
    compute_units: int
    warp_size: int = 32
    max_num_warps: int = 32
    max_grid: int = 2**31 - 1
    onchip_bytes: int = 228 * 1024
    max_block: int = 65536
    programs_per_unit: int = 4
    uses_num_warps: bool = True
    direct_launch: bool = False
    register_bytes: int | None = None
    pipeline_stages: int = 3
    gate_tile: int = 4096
    reduction_programs_per_unit: int = 1
    vocab_programs_per_unit: int = 1
    lm_head_chunk_ratio: int = 2
    lm_head_row_multiple: int = 64
    lm_head_min_rows: int = 512

    def grid(self, work_items: int) -> int:
        """Persistent grid for ``work_items`` independent rows or tiles."""
        return max(1, min(work_items, self.compute_units * self.programs_per_unit, self.max_grid))

    def register_budget(self) -> int:
        """Bytes a program may keep its register-resident blocks in."""
        return self.onchip_bytes if self.register_bytes is None else self.register_bytes

    def num_warps(self, block_elems: int) -> int:
        """Warps for a block of ``block_elems`` elements: about 256 elements
        per warp-thread group, capped by the hardware."""
        warps = 1
        while warps < self.max_num_warps and warps * self.warp_size * 8 < block_elems:
            warps *= 2
        return warps


@dataclass(frozen=True)
class Conformance:
    """What a backend declares about itself to the conformance suite.

    unsupported_dtypes: dtype names (``"float16"``) the backend does not accept
        on any op; the suite deselects those cases.
    expected_failures: ``{test-id substring: reason}``; matching cases are run
        as strict xfail, so one that starts passing is reported.
    """

    unsupported_dtypes: frozenset[str] = frozenset()
    expected_failures: Mapping[str, str] = field(default_factory=dict)


def load_attr(spec: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"expected 'module:attr', got {spec!r}")
    value: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        value = getattr(value, part)
    return value
