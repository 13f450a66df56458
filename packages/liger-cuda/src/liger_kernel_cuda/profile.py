"""The NVIDIA device profile: what the portable Triton kernels size launches by.

Hardware facts come from ``torch.cuda.get_device_properties``; the launch
tuning that is a choice rather than a fact lives in :data:`ARCH_TUNING`, one
row per compute-capability major, so retuning an architecture is a data change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from liger_kernel.backend import DeviceProfile


@dataclass(frozen=True)
class ArchTuning:
    """Launch choices for one architecture family.

    programs_per_unit: persistent programs per SM. Every program of a
        persistent kernel owns the same share of rows, so the grid must be a
        whole number of waves of resident programs or the last wave becomes a
        tail. A row kernel with a 4096-element block (16 warps, ~64 registers
        per thread) fits twice in the 64K registers of an SM; one with a wider
        block fits once. Two programs per SM are one full wave in the first
        case and two equal waves in the second: balanced either way.
    max_block: widest row block kept in registers in one step; 16384 fp32
        values over 1024 threads is 16 registers per live value, room for the
        four or five live values of the norm backward. Wider rows are walked in
        blocks.
    max_num_warps: 1024 threads per program.
    gate_tile: elements per program of SwiGLU / GEGLU. Measured on an H100,
        SwiGLU forward + backward at (8192, 14336) bf16: one program per tile
        of 4096 (16 warps) or 2048 (8 warps) 0.623 ms, 1024 (4 warps) 0.625
        ms; persistent grids of 1-2 programs per SM over 2048-16384-element
        tiles 0.647-0.662 ms. GEGLU alike.
    reduction_programs_per_unit: the norms' weight-gradient kernels. Measured
        on an H100 (RMSNorm backward, 8192 x 4096 bf16): two programs per SM
        are no faster than one once the twice larger partial buffer is summed,
        and one keeps RMSNorm within its 66 MiB target.
    vocab_programs_per_unit: cross-entropy. With one, the rows in flight (one
        per SM, 250 KB each at V = 128256 bf16) fit the L2 cache, so the
        gradient pass re-reads its row from L2 instead of HBM.
    lm_head_chunk_ratio: fused linear cross-entropy. Measured on an H200 at
        (8192, 4096) x (128256, 4096) bf16, chunk rows -> ms / MiB: 512 (ratio
        2) 40.1 / 1195; 384 46.1 / 1163; 320 45.0 / 1147; 256 (ratio 1) 51.6 /
        1131. Each chunk reads and writes the (V, H) weight gradient once, so
        halving the chunk adds that traffic per chunk.
    """

    programs_per_unit: int = 2
    max_block: int = 16384
    max_num_warps: int = 32
    # the core's defaults are these H100 measurements: one number, one place
    gate_tile: int = DeviceProfile.gate_tile
    reduction_programs_per_unit: int = DeviceProfile.reduction_programs_per_unit
    vocab_programs_per_unit: int = DeviceProfile.vocab_programs_per_unit
    lm_head_chunk_ratio: int = DeviceProfile.lm_head_chunk_ratio


#: Keyed by compute capability major: 7 Volta/Turing, 8 Ampere/Ada, 9 Hopper,
#: 10 and 12 Blackwell. All SMs since Volta have 64K 32-bit registers, which
#: is what the defaults are sized by; a row here is where an architecture's
#: measured tuning goes.
ARCH_TUNING: dict[int, ArchTuning] = {
    7: ArchTuning(),
    8: ArchTuning(),
    9: ArchTuning(),
    10: ArchTuning(),
    12: ArchTuning(),
}

#: Opt-in shared memory per block (bytes) by compute capability, for torch
#: builds whose device properties lack ``shared_memory_per_block_optin``
#: (CUDA C Programming Guide, "Technical Specifications per Compute Capability").
SHARED_MEMORY_OPTIN: dict[tuple[int, int], int] = {
    (7, 0): 96 * 1024,
    (7, 2): 96 * 1024,
    (7, 5): 64 * 1024,
    (8, 0): 163 * 1024,
    (8, 6): 99 * 1024,
    (8, 7): 163 * 1024,
    (8, 9): 99 * 1024,
    (9, 0): 227 * 1024,
    (10, 0): 227 * 1024,
    (12, 0): 99 * 1024,
}
#: Below every architecture in the table above: the safe guess for unknown ones.
DEFAULT_SHARED_MEMORY = 48 * 1024


def _device_index(device: Any) -> int:
    if isinstance(device, int):
        return device
    device = torch.device(device)
    if device.type == "cuda" and device.index is not None:
        return device.index
    # A "cuda" device without index, or a CPU tensor under the CUDA mock: the
    # current device is the one its kernels would run on.
    return torch.cuda.current_device()


def _tuning(major: int) -> ArchTuning:
    if major in ARCH_TUNING:
        return ARCH_TUNING[major]
    # An architecture newer than the table gets the newest row; an older one the oldest.
    known = sorted(ARCH_TUNING)
    return ARCH_TUNING[known[-1] if major > known[-1] else known[0]]


def _shared_memory(props: Any) -> int:
    optin = getattr(props, "shared_memory_per_block_optin", None)
    if optin:
        return int(optin)
    return SHARED_MEMORY_OPTIN.get((props.major, props.minor), DEFAULT_SHARED_MEMORY)


def nvidia_profile(device: Any) -> DeviceProfile:
    """The profile of ``device`` (a cuda device, its index, or a CPU device under the CUDA mock)."""
    props = torch.cuda.get_device_properties(_device_index(device))
    tuning = _tuning(props.major)
    warp_size = int(getattr(props, "warp_size", 32) or 32)
    return DeviceProfile(
        name=f"{props.name} (sm_{props.major}{props.minor})",
        compute_units=int(props.multi_processor_count),
        warp_size=warp_size,
        max_num_warps=min(tuning.max_num_warps, 1024 // warp_size),
        max_grid=2**31 - 1,
        onchip_bytes=_shared_memory(props),
        max_block=tuning.max_block,
        programs_per_unit=tuning.programs_per_unit,
        direct_launch=True,
        gate_tile=tuning.gate_tile,
        reduction_programs_per_unit=tuning.reduction_programs_per_unit,
        vocab_programs_per_unit=tuning.vocab_programs_per_unit,
        lm_head_chunk_ratio=tuning.lm_head_chunk_ratio,
    )
