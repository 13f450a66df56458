"""The ``xpu`` device profile, for the portable Triton kernels.

Only read when ``BACKEND.profile`` names :func:`device_profile`, that is when
ops of this backend route to the portable kernels of ``liger_kernel.triton``
(which size their launches from it through
``liger_kernel.dispatch.device_profile``). Replace the fallbacks below with
your hardware's figures:

- compute units: streaming multiprocessors, compute units or vector cores;
  the persistent grid is ``compute_units * programs_per_unit`` programs;
- warp size: lanes that run in lock-step; ``max_num_warps`` keeps a program
  within ``MAX_THREADS_PER_PROGRAM`` threads;
- on-chip bytes: what one program's tile may hold (shared memory, unified
  buffer less a margin);
- max block: the widest power-of-two block of elements a program handles in
  one step.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from liger_kernel.backend import DeviceProfile

DEVICE_TYPE = "xpu"
FALLBACK_COMPUTE_UNITS = os.cpu_count() or 1
WARP_SIZE = 32
MAX_THREADS_PER_PROGRAM = 1024
ONCHIP_BYTES = 64 * 1024
MAX_BLOCK = 16384


def device_profile(device: Any) -> DeviceProfile:
    runtime = getattr(torch, DEVICE_TYPE, None)
    get_properties = getattr(runtime, "get_device_properties", None)
    index = getattr(device, "index", None) or 0
    props = get_properties(index) if get_properties is not None else None
    compute_units = int(getattr(props, "multi_processor_count", 0) or FALLBACK_COMPUTE_UNITS)
    return DeviceProfile(
        name=f"{DEVICE_TYPE}:{getattr(props, 'name', 'unknown')}",
        compute_units=compute_units,
        warp_size=WARP_SIZE,
        max_num_warps=MAX_THREADS_PER_PROGRAM // WARP_SIZE,
        onchip_bytes=ONCHIP_BYTES,
        max_block=MAX_BLOCK,
    )
