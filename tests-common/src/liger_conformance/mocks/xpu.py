"""An Intel GPU (Data Center GPU Max 1100, Xe-HPC) on a CPU-only machine, strictly.

``active()`` makes torch report an XPU build (``torch.version.xpu`` set) whose
``torch.xpu`` answers for the device: availability, device count, current
device, name and properties with the fields torch's ``_XpuDeviceProperties``
exposes (``gpu_eu_count``, ``gpu_subslice_count``, ``max_work_group_size``,
``sub_group_sizes``, ...). Torch does not expose shared local memory; Triton's
Intel driver does (``utils.get_device_properties(index)["max_shared_mem"]``),
so the mock installs a stand-in of that driver as Triton's active driver, and
registers it as Triton's ``intel`` backend, whose target is ``xpu``. CPU
tensors route as ``xpu`` tensors; kernels run under the Triton interpreter
(``TRITON_INTERPRET=1``).

The stand-ins say what they are: the driver class is
:class:`MockIntelDriver` (``LIGER_MOCK = "xpu"``), the device name ends in
"(liger-conformance mock)", and the backend's compiler refuses to compile
anything (:class:`MockIntelCompiler`): only the interpreter runs kernels here.
liger-xpu's check that Triton is Intel's therefore passes under the mock
because the mock provides an Intel backend and an ``xpu`` target, not because
the check is skipped.

Strict, as the device is, for every kernel launched while it is active:

* work-group size: a launch whose ``num_warps * threads_per_warp`` (Triton's
  defaults: 4 warps, 32 threads per warp on Intel) exceeds
  ``max_work_group_size``, or whose sub-group size the device does not offer,
  raises :class:`WorkGroupSizeError` before any program runs;
* shared local memory: the floating-point values a program holds at once are
  counted by :class:`liger_conformance.mocks.LiveTileMonitor` (the accounting
  the NPU mock applies to its unified buffer); above the device's shared local
  memory, :class:`SharedLocalMemoryError` is raised. This is conservative: Intel's
  compiler keeps tiles in registers and stages through SLM what reductions and
  layout conversions exchange between sub-groups, never more than the tiles
  themselves; on the device an SLM overflow is a compile-time OutOfResources
  error, here it fires while the program runs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from liger_conformance.mocks import (
    LiveTileMonitor,
    MockLaunchError,
    Patches,
    emulate_devices,
    patches,
    routed_as,
    strict_launches,
)

MOCK_MARKER = "xpu"
#: What torch.version.xpu says on an XPU build (the SYCL compiler's release).
SYCL_VERSION = "20250101"
#: Triton's launch defaults: XPUOptions of Intel's backend compile 4 warps of 32 work-items.
DEFAULT_NUM_WARPS = 4
DEFAULT_THREADS_PER_WARP = 32


class XPULaunchError(MockLaunchError):
    """A launch the emulated Intel GPU refuses."""


class WorkGroupSizeError(XPULaunchError):
    pass


class SharedLocalMemoryError(XPULaunchError):
    pass


@dataclass(frozen=True)
class FakeXPUProperties:
    """What ``torch.xpu.get_device_properties`` returns, with the fields torch exposes."""

    name: str
    platform_name: str
    vendor: str
    driver_version: str
    version: str
    device_id: int
    total_memory: int
    max_compute_units: int
    gpu_eu_count: int
    gpu_subslice_count: int
    max_work_group_size: int
    max_num_sub_groups: int
    sub_group_sizes: tuple[int, ...]
    has_fp16: bool = True
    has_fp64: bool = True
    has_atomic64: bool = True
    has_bfloat16_conversions: bool = True
    has_subgroup_matrix_multiply_accumulate: bool = True
    has_subgroup_2d_block_io: bool = True
    type: str = "gpu"


#: Data Center GPU Max 1100: 56 Xe cores of 8 vector engines (448 EUs), 48 GiB.
MAX_1100 = FakeXPUProperties(
    name="Intel(R) Data Center GPU Max 1100 (liger-conformance mock)",
    platform_name="Intel(R) oneAPI Unified Runtime over Level-Zero",
    vendor="Intel(R) Corporation",
    driver_version="1.6.31294",
    version="12.60.7",
    device_id=0x0BDA,
    total_memory=48 * 1024**3,
    max_compute_units=448,
    gpu_eu_count=448,
    gpu_subslice_count=56,
    max_work_group_size=1024,
    max_num_sub_groups=64,
    sub_group_sizes=(16, 32),
)
#: Shared local memory per work-group of an Xe-HPC core.
MAX_1100_SLM_BYTES = 128 * 1024


class _MockIntelUtils:
    def __init__(self, props: FakeXPUProperties, slm_bytes: int) -> None:
        self._props, self._slm_bytes = props, slm_bytes

    def get_device_properties(self, device: Any) -> dict[str, Any]:
        return {
            "max_shared_mem": self._slm_bytes,
            "multiprocessor_count": self._props.gpu_subslice_count,
            "max_work_group_size": self._props.max_work_group_size,
            "sub_group_sizes": list(self._props.sub_group_sizes),
        }


class MockIntelDriver:
    """Stand-in for the active driver of Triton's Intel backend: the parts liger-xpu queries."""

    LIGER_MOCK = MOCK_MARKER

    def __init__(self, props: FakeXPUProperties = MAX_1100, slm_bytes: int = MAX_1100_SLM_BYTES) -> None:
        self.props = props
        self.utils = _MockIntelUtils(props, slm_bytes)

    @staticmethod
    def is_active() -> bool:
        return True

    def get_current_target(self) -> Any:
        from triton.backends.compiler import GPUTarget

        return GPUTarget("xpu", {"name": self.props.name, "mock": MOCK_MARKER}, DEFAULT_THREADS_PER_WARP)

    def get_current_device(self) -> int:
        return 0

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cpu")


class MockIntelCompiler:
    """The compiler half of the mock's Triton ``intel`` backend: it compiles nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            "the XPU mock of liger-conformance cannot compile Triton kernels; "
            "run them under the interpreter (TRITON_INTERPRET=1)"
        )


class XPULaunchMonitor(LiveTileMonitor):
    """An Intel GPU's launch rules: work-group size and shared local memory."""

    def __init__(self, props: FakeXPUProperties, slm_bytes: int) -> None:
        super().__init__(slm_bytes)
        self.props = props

    def check_options(self, options: dict[str, Any]) -> None:
        num_warps = int(options.get("num_warps") or DEFAULT_NUM_WARPS)
        sub_group = int(options.get("threads_per_warp") or DEFAULT_THREADS_PER_WARP)
        if sub_group not in self.props.sub_group_sizes:
            raise WorkGroupSizeError(
                f"{self.kernel}: sub-group size {sub_group} is not supported by {self.props.name} "
                f"(sub_group_sizes {list(self.props.sub_group_sizes)})"
            )
        if num_warps * sub_group > self.props.max_work_group_size:
            raise WorkGroupSizeError(
                f"{self.kernel}: num_warps={num_warps} x {sub_group} work-items is a work-group of "
                f"{num_warps * sub_group}, above max_work_group_size {self.props.max_work_group_size}"
            )

    def overflow(self) -> MockLaunchError:
        return SharedLocalMemoryError(
            f"{self.kernel}: out of resource: shared local memory, required {self.live_bytes} bytes, "
            f"hardware limit {self.onchip_bytes} bytes (floating-point values alive at once)"
        )


#: The monitor of the innermost active strict mock (None outside any).
monitor: XPULaunchMonitor | None = None


def _intel_triton(p: Patches, props: FakeXPUProperties, slm_bytes: int, strict: bool) -> None:
    try:
        from triton.backends import Backend, backends
        from triton.runtime.driver import driver
    except ImportError:  # no triton here: nothing can launch, only routing is mocked
        return
    p.setitem(backends, "intel", Backend(compiler=MockIntelCompiler, driver=MockIntelDriver))
    p.setattr(driver, "_active", MockIntelDriver(props, slm_bytes))
    if strict:
        watch = XPULaunchMonitor(props, slm_bytes)
        p.setattr(sys.modules[__name__], "monitor", watch)
        strict_launches(p, watch)


@contextlib.contextmanager
def active(
    props: FakeXPUProperties = MAX_1100,
    device_count: int = 1,
    strict: bool = True,
    slm_bytes: int = MAX_1100_SLM_BYTES,
) -> Iterator[None]:
    """Look like ``device_count`` Intel GPUs described by ``props`` until the block ends.

    With ``strict`` (the default) every Triton launch must respect the
    work-group limit and ``slm_bytes`` of shared local memory, or it raises
    :class:`XPULaunchError`."""
    with patches() as p:
        p.environ("TRITON_INTERPRET", "1")
        p.setattr(torch.version, "xpu", SYCL_VERSION)
        emulate_devices(p, torch.xpu, props, device_count)
        _intel_triton(p, props, slm_bytes, strict)
        with routed_as("xpu"):
            yield
