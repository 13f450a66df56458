"""The XPU device profile, from torch.xpu's properties and Triton's Intel driver."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

from liger_kernel_xpu.profile import FALLBACK_SLM_BYTES, block_for, xpu_profile

xpu_mock = pytest.importorskip("liger_conformance.mocks.xpu", reason="liger-conformance provides the XPU mock")

#: Arc A770 (Xe-HPG): 32 Xe cores, sub-groups of 8, 16 or 32, 64 KiB of SLM.
ARC_A770 = dataclasses.replace(
    xpu_mock.MAX_1100,
    name="Intel(R) Arc(TM) A770 Graphics (test)",
    max_compute_units=512,
    gpu_eu_count=512,
    gpu_subslice_count=32,
    max_num_sub_groups=128,
    sub_group_sizes=(8, 16, 32),
    has_fp64=False,
)


def test_data_center_max_profile():
    with xpu_mock.active():
        profile = xpu_profile(torch.device("cpu"))
    assert profile.name == "xpu:Intel(R) Data Center GPU Max 1100 (liger-conformance mock)"
    assert profile.compute_units == 56  # Xe cores, not the 448 EUs
    assert (profile.warp_size, profile.max_num_warps) == (32, 32)  # 1024 work-items per work-group
    assert profile.onchip_bytes == 128 * 1024
    assert profile.max_block == 2048
    assert profile.programs_per_unit == 2 and profile.uses_num_warps and not profile.direct_launch


def test_every_block_stays_within_the_work_group():
    with xpu_mock.active():
        profile = xpu_profile(torch.device("cpu"))
    for block in (16, 1024, profile.max_block, 1 << 20):
        assert profile.num_warps(block) * profile.warp_size <= xpu_mock.MAX_1100.max_work_group_size


def test_arc_profile_reads_the_smaller_shared_local_memory():
    with xpu_mock.active(ARC_A770, slm_bytes=64 * 1024):
        profile = xpu_profile(torch.device("cpu"))
    assert (profile.compute_units, profile.onchip_bytes, profile.max_block) == (32, 64 * 1024, 1024)


def test_shared_local_memory_falls_back_when_the_driver_does_not_say(monkeypatch, caplog):
    with xpu_mock.active():
        from triton.runtime.driver import driver

        monkeypatch.setattr(driver.active.utils, "get_device_properties", lambda index: {})
        with caplog.at_level(logging.WARNING, logger="liger_kernel"):
            profile = xpu_profile(torch.device("cpu"))
    assert profile.onchip_bytes == FALLBACK_SLM_BYTES and profile.max_block == 1024
    assert "shared local memory size unavailable" in caplog.text


def test_a_device_without_32_wide_sub_groups_is_refused():
    narrow = dataclasses.replace(xpu_mock.MAX_1100, sub_group_sizes=(8, 16))
    with xpu_mock.active(narrow), pytest.raises(RuntimeError, match=r"sub-groups of \[8, 16\] work-items"):
        xpu_profile(torch.device("cpu"))


def test_an_xpu_device_index_is_used_as_given():
    with xpu_mock.active(device_count=2):
        assert xpu_profile(torch.device("xpu", 1)).compute_units == 56
        with pytest.raises(RuntimeError, match="ordinal 3"):
            xpu_profile(torch.device("xpu", 3))


@pytest.mark.parametrize(("onchip", "block"), [(64 * 1024, 1024), (128 * 1024, 2048), (1 << 30, 16384), (0, 16)])
def test_block_for(onchip, block):
    assert block_for(onchip) == block
