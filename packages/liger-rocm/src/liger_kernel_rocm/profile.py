"""The AMD device profile.

What the portable kernels need to know about an AMD Instinct GPU, read from
``torch.cuda.get_device_properties`` (ROCm builds of torch answer through the
CUDA API):

- compute units: ``multi_processor_count`` (CUs; 304 on MI300X);
- wavefront: ``warp_size``, 64 on CDNA (fallback 64). A program may use at most
  1024 threads, so ``max_num_warps = 1024 // 64 = 16``; asking Triton for 32
  warps there fails to launch;
- on-chip memory: LDS per workgroup, ``shared_memory_per_block`` (fallback
  64 KiB, the CDNA3 figure);
- ``max_block``: 16384 elements. Register files are per wavefront of 64 lanes
  and a 1024-thread program holding a 65536-wide fp32 row spills; wider rows
  are walked in blocks instead.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backend import DeviceProfile

FALLBACK_WAVEFRONT = 64
FALLBACK_LDS_BYTES = 64 * 1024
MAX_THREADS_PER_PROGRAM = 1024
MAX_BLOCK = 16384


def _index(device: Any) -> int:
    index = getattr(device, "index", None)
    # Under the ROCm mock tensors live on the CPU: use the current device.
    return torch.cuda.current_device() if index is None or getattr(device, "type", "cuda") != "cuda" else index


def amd_profile(device: Any) -> DeviceProfile:
    props = torch.cuda.get_device_properties(_index(device))
    wavefront = int(getattr(props, "warp_size", 0) or FALLBACK_WAVEFRONT)
    lds = int(getattr(props, "shared_memory_per_block", 0) or FALLBACK_LDS_BYTES)
    return DeviceProfile(
        name=f"amd:{getattr(props, 'gcnArchName', props.name)}",
        compute_units=int(props.multi_processor_count),
        warp_size=wavefront,
        max_num_warps=MAX_THREADS_PER_PROGRAM // wavefront,
        onchip_bytes=lds,
        max_block=MAX_BLOCK,
        programs_per_unit=2,
    )
