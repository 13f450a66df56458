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

Tuning. Chosen from the compiler's resource report (``tools/compile_kernels.py``
compiles every launch for gfx942 and gfx950 with the AMD backend of the pinned
triton wheel); each is TO BE CONFIRMED ON HARDWARE by a timed run on an MI300X
and an MI355X:

- ``pipeline_stages = 1``: Triton's AMD pipeliner keeps loads that feed no
  ``tl.dot`` in registers, not in LDS, so each stage is another copy of a
  block's loads in VGPRs. With 3 stages the compile report shows spills in the
  TVD, JSD, norm and cross-entropy kernels on gfx942 and gfx950; with 1 none.
- ``programs_per_unit = vocab_programs_per_unit = 4``: AMD's MI300X tuning
  guidance asks for at least about 1024 work-groups to fill the GPU; 4 per CU
  is 1216 on an MI300X (304 CUs) and 1024 on an MI355X (256 CUs).
- ``register_bytes``: the blocks of the vocabulary kernels live in VGPRs (a CU
  has 4 SIMDs x 512 VGPRs x 64 lanes x 4 bytes = 512 KiB), not in the 64 KiB
  of LDS that ``onchip_bytes`` counts; each of the ``programs_per_unit``
  programs resident on a CU gets its share, 128 KiB.
- ``direct_launch`` stays off: its cache key covers what Triton specializes on
  for NVIDIA, not the AMD backend's buffer-ops specialization (whether a
  tensor's offsets fit 32 bits), so a reused kernel could be the wrong one.
- ``waves_per_eu`` (a compile option of Triton's AMD backend, ``HIPOptions``)
  is not set: the report already shows at least 2 waves per SIMD for every
  kernel, and the portable launchers pass no vendor-only options.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backend import DeviceProfile

FALLBACK_WAVEFRONT = 64
FALLBACK_LDS_BYTES = 64 * 1024
MAX_THREADS_PER_PROGRAM = 1024
MAX_BLOCK = 16384
#: VGPR bytes per compute unit on CDNA3 (gfx942) and CDNA4 (gfx950)
REGISTER_FILE_BYTES = 4 * 512 * 64 * 4
PROGRAMS_PER_CU = 4
PIPELINE_STAGES = 1


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
        programs_per_unit=PROGRAMS_PER_CU,
        vocab_programs_per_unit=PROGRAMS_PER_CU,
        register_bytes=REGISTER_FILE_BYTES // PROGRAMS_PER_CU,
        pipeline_stages=PIPELINE_STAGES,
        direct_launch=False,
    )
