"""The XPU mock: torch.xpu and Triton's Intel driver answer inside ``active()``
and are put back after it; launches the device would refuse fail."""

from __future__ import annotations

import os

# @triton.jit picks the interpreter when it decorates _copy below
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch
import triton
import triton.language as tl
from triton.backends import backends
from triton.runtime.driver import driver

from liger_conformance.mocks import xpu
from liger_kernel.dispatch import dispatcher

PATCHED = ("is_available", "device_count", "current_device", "set_device", "get_device_name", "get_device_properties")


def snapshot():
    return (
        {name: torch.xpu.__dict__.get(name) for name in PATCHED},
        torch.version.xpu,
        "intel" in backends,
        driver._active,
        dict(dispatcher.device_alias),
    )


@triton.jit
def _copy(X, Y, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(Y + offsets, tl.load(X + offsets, mask=offsets < n), mask=offsets < n)


def test_patches_take_effect():
    with xpu.active():
        assert torch.xpu.is_available() and torch.xpu.device_count() == 1
        assert torch.version.xpu == xpu.SYCL_VERSION
        props = torch.xpu.get_device_properties(torch.device("cpu"))
        assert props is xpu.MAX_1100 and torch.xpu.get_device_name() == props.name
        assert "(liger-conformance mock)" in props.name
        assert props.gpu_subslice_count == 56 and list(props.sub_group_sizes) == [16, 32]
        assert backends["intel"].driver is xpu.MockIntelDriver
        assert driver.active.get_current_target().backend == "xpu"
        assert driver.active.utils.get_device_properties(0)["max_shared_mem"] == xpu.MAX_1100_SLM_BYTES
        assert dispatcher.device_alias["cpu"] == "xpu"


def test_patches_are_undone():
    before = snapshot()
    with pytest.raises(RuntimeError, match="inside"), xpu.active():
        assert snapshot() != before
        raise RuntimeError("an error inside the mock")
    assert snapshot() == before
    assert not torch.xpu.is_available() and torch.version.xpu is None


def test_the_mock_backend_compiles_nothing():
    with xpu.active(), pytest.raises(RuntimeError, match="cannot compile"):
        backends["intel"].compiler()


def test_device_count_and_ordinals():
    with xpu.active(device_count=2):
        torch.xpu.set_device(1)
        assert torch.xpu.current_device() == 1
        with pytest.raises(RuntimeError, match="ordinal 2"):
            torch.xpu.get_device_properties(2)


def test_a_work_group_above_the_limit_fails():
    x = torch.randn(64)
    y = torch.empty_like(x)
    with xpu.active():
        with pytest.raises(xpu.WorkGroupSizeError, match="work-group of 2048, above max_work_group_size 1024"):
            _copy[(1,)](x, y, 64, BLOCK=64, num_warps=64)
        with pytest.raises(xpu.WorkGroupSizeError, match="sub-group size 8 is not supported"):
            _copy[(1,)](x, y, 64, BLOCK=64, num_warps=4, threads_per_warp=8)
        _copy[(1,)](x, y, 64, BLOCK=64, num_warps=32)  # 32 x 32 = 1024: at the limit, accepted
    torch.testing.assert_close(y, x)


def test_a_tile_above_shared_local_memory_fails():
    n = 64 * 1024  # one fp32 tile of 256 KiB > 128 KiB of SLM
    x = torch.randn(n)
    y = torch.empty_like(x)
    with xpu.active():
        with pytest.raises(xpu.SharedLocalMemoryError, match="hardware limit 131072 bytes"):
            _copy[(1,)](x, y, n, BLOCK=n)
        _copy[(4,)](x, y, n, BLOCK=n // 4)  # 64 KiB tiles fit
    torch.testing.assert_close(y, x)


def test_lenient_mock_checks_nothing():
    n = 64 * 1024
    x = torch.randn(n)
    y = torch.empty_like(x)
    with xpu.active(strict=False):
        _copy[(1,)](x, y, n, BLOCK=n, num_warps=64)
    torch.testing.assert_close(y, x)
