"""The Intel GPU device profile.

What the portable kernels need to know about an Intel GPU:

- compute units: Xe cores, ``gpu_subslice_count`` of
  ``torch.xpu.get_device_properties`` (56 on a Data Center GPU Max 1100). One
  Triton program is one work-group, and a work-group runs on one Xe core, so
  the persistent grid is sized to them (torch's Inductor does the same);
- sub-group size: Triton's Intel backend compiles ``threads_per_warp=32`` unless
  a kernel asks otherwise, and the portable kernels never ask, so a "warp" is a
  sub-group of 32 work-items. Every Intel GPU that backend supports offers 32
  (``sub_group_sizes`` [16, 32] on Xe-HPC and Xe2, [8, 16, 32] on Xe-HPG); a
  device that does not would make every launch fail, which :func:`xpu_profile`
  says instead;
- ``max_num_warps``: ``max_work_group_size // 32`` (1024 // 32 = 32); more warps
  is a work-group the device refuses to launch;
- on-chip memory: shared local memory per work-group. torch does not expose it,
  Triton's Intel driver does (``utils.get_device_properties(index)
  ["max_shared_mem"]``: 128 KiB on Xe-HPC); if the driver does not answer,
  64 KiB, the smallest of the GPUs Intel's Triton supports (Arc A-series) is
  assumed: a smaller budget is always valid, only slower;
- ``max_block``: the widest power-of-two block of which :data:`LIVE_TILES` fp32
  tiles fit that memory (2048 elements at 128 KiB, 1024 at 64 KiB). Measured
  under the strict XPU mock, which counts the floating-point values a program
  holds at once against shared local memory, the portable kernels hold up to
  12 tiles (layer_norm's backward; rms_norm 11, the gates 8, cross-entropy 6).
  That bound is conservative: the compiler keeps tiles in registers (a
  1024-work-item work-group has 256 KiB of them on Xe-HPC) and stages through
  SLM only what sub-groups exchange. Wider blocks may be faster on the device;
  raise the bound only with a measurement from the gpu-intel lane.

Two programs per Xe core: its 8 vector engines run 8 hardware threads each, and
a 1024-work-item work-group of SIMD32 sub-groups takes 32 of those 64 threads.
The tuning fields (gate tile, programs per unit of the reductions and the
cross-entropy kernels, lm-head chunk ratio) keep DeviceProfile's defaults,
which were measured on an H100: nothing here has been measured on an Intel GPU
yet (``python -m tools.bench`` on one would).

No op is overridden: the portable kernels use ``tl.*`` math only, which Intel's
Triton compiles, and their launch sizes come from this profile. The strict XPU
mock of liger-conformance holds every launch to the work-group and shared
local memory limits above.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from liger_kernel.backend import DeviceProfile

logger = logging.getLogger("liger_kernel")

#: Sub-group size Triton's Intel backend compiles for unless told otherwise.
TRITON_SUB_GROUP = 32
FALLBACK_SLM_BYTES = 64 * 1024
#: fp32 tiles of one block a portable kernel may hold at once: 12 measured, and room.
LIVE_TILES = 16
MAX_BLOCK = 16384
PROGRAMS_PER_XE_CORE = 2


def _index(device: Any) -> int:
    index = getattr(device, "index", None)
    # Under the XPU mock tensors live on the CPU: use the current device.
    return torch.xpu.current_device() if index is None or getattr(device, "type", "xpu") != "xpu" else int(index)


def shared_local_memory(index: int) -> int:
    """Bytes of shared local memory one work-group may use on device ``index``."""
    try:
        import triton

        found = int(triton.runtime.driver.active.utils.get_device_properties(index)["max_shared_mem"])
        if found > 0:
            return found
    except Exception as exc:  # a driver without the query, or no device
        logger.debug("Triton's Intel driver gave no shared local memory size: %s", exc)
    logger.warning("liger-xpu: shared local memory size unavailable; assuming %d bytes", FALLBACK_SLM_BYTES)
    return FALLBACK_SLM_BYTES


def block_for(onchip_bytes: int) -> int:
    """Widest power-of-two block whose ``LIVE_TILES`` fp32 tiles fit ``onchip_bytes``."""
    block = 16
    while block * 2 <= MAX_BLOCK and block * 2 * 4 * LIVE_TILES <= onchip_bytes:
        block *= 2
    return block


def xpu_profile(device: Any) -> DeviceProfile:
    index = _index(device)
    props = torch.xpu.get_device_properties(index)
    sizes = [int(size) for size in props.sub_group_sizes]
    if TRITON_SUB_GROUP not in sizes:
        raise RuntimeError(
            f"liger-xpu: {props.name} offers sub-groups of {sizes} work-items, but Triton's Intel backend "
            f"compiles the portable kernels for {TRITON_SUB_GROUP}"
        )
    onchip = shared_local_memory(index)
    return DeviceProfile(
        name=f"xpu:{props.name}",
        compute_units=int(props.gpu_subslice_count),
        warp_size=TRITON_SUB_GROUP,
        max_num_warps=int(props.max_work_group_size) // TRITON_SUB_GROUP,
        onchip_bytes=onchip,
        max_block=block_for(onchip),
        programs_per_unit=PROGRAMS_PER_XE_CORE,
    )
