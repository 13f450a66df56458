"""An NVIDIA GPU on a CPU-only machine.

``active()`` makes torch report a CUDA build (``torch.version.cuda`` set,
``torch.version.hip`` None) with an H100-like device: 132 SMs, 32-wide warps,
227 KiB of opt-in shared memory per block. CPU tensors route as ``cuda``
tensors; kernels run under the Triton interpreter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from liger_conformance.mocks import FakeDeviceProperties, cuda_runtime

CUDA_VERSION = "12.8"

H100 = FakeDeviceProperties(
    name="NVIDIA H100 80GB HBM3 (liger-conformance mock)",
    major=9,
    minor=0,
    multi_processor_count=132,
    total_memory=80 * 1024**3,
    warp_size=32,
    shared_memory_per_block_optin=227 * 1024,
    shared_memory_per_multiprocessor=228 * 1024,
    L2_cache_size=50 * 1024**2,
)


@contextlib.contextmanager
def active(props: FakeDeviceProperties = H100, device_count: int = 1) -> Iterator[None]:
    """Look like ``device_count`` NVIDIA GPUs described by ``props`` until the block ends."""
    with cuda_runtime(props, cuda_version=CUDA_VERSION, hip_version=None, device_count=device_count):
        yield
