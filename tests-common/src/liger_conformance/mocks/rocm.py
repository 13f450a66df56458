"""An AMD GPU on a CPU-only machine.

``active()`` makes torch report a ROCm build (``torch.version.hip`` set,
``torch.version.cuda`` None; ROCm exposes AMD GPUs as device type ``cuda``)
with an MI300X-like device: 304 compute units, 64-wide wavefronts, 64 KiB of
LDS per workgroup, ``gcnArchName`` gfx942; or, with ``active(MI355X)``, a
CDNA4 MI355X: 256 compute units, 160 KiB of LDS, gfx950. CPU tensors route as
``cuda`` tensors; kernels run under the Triton interpreter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from liger_conformance.mocks import FakeDeviceProperties, cuda_runtime

HIP_VERSION = "6.4.43482"
#: 32-bit registers per CU on CDNA3 and CDNA4: 4 SIMDs x 512 VGPRs x 64 lanes
#: (NVIDIA SMs have 65536)
CDNA_REGISTERS_PER_CU = 4 * 512 * 64

MI300X = FakeDeviceProperties(
    name="AMD Instinct MI300X (liger-conformance mock)",
    major=9,
    minor=4,
    multi_processor_count=304,
    total_memory=192 * 1024**3,
    warp_size=64,
    shared_memory_per_block_optin=64 * 1024,
    shared_memory_per_block=64 * 1024,
    shared_memory_per_multiprocessor=64 * 1024,
    max_threads_per_multi_processor=2048,
    regs_per_multiprocessor=CDNA_REGISTERS_PER_CU,
    L2_cache_size=4 * 1024**2,
    gcnArchName="gfx942:sramecc+:xnack-",
)

MI355X = FakeDeviceProperties(
    name="AMD Instinct MI355X (liger-conformance mock)",
    major=9,
    minor=5,
    multi_processor_count=256,
    total_memory=288 * 1024**3,
    warp_size=64,
    shared_memory_per_block_optin=160 * 1024,
    shared_memory_per_block=160 * 1024,
    shared_memory_per_multiprocessor=160 * 1024,
    max_threads_per_multi_processor=2048,
    regs_per_multiprocessor=CDNA_REGISTERS_PER_CU,
    L2_cache_size=4 * 1024**2,
    gcnArchName="gfx950:sramecc+:xnack-",
)


@contextlib.contextmanager
def active(props: FakeDeviceProperties = MI300X, device_count: int = 1) -> Iterator[None]:
    """Look like ``device_count`` AMD GPUs described by ``props`` until the block ends."""
    with cuda_runtime(props, cuda_version=None, hip_version=HIP_VERSION, device_count=device_count):
        yield
