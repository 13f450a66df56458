"""liger-rocm: profile, probe, and the triton-identity check, without AMD hardware."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from liger_kernel_rocm import BACKEND, triton_check
from liger_kernel_rocm.probe import probe
from liger_kernel_rocm.profile import amd_profile


def fake_props(**overrides):
    props = dict(name="AMD Instinct MI300X", gcnArchName="gfx942", multi_processor_count=304, warp_size=64)
    props.update(overrides)
    return SimpleNamespace(**props)


@pytest.fixture
def amd_gpu(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", "6.4.0", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "AMD Instinct MI300X")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index=0: fake_props())


def test_profile_caps_num_warps_for_64_wide_wavefronts(amd_gpu):
    profile = amd_profile(torch.device("cuda", 0))
    assert profile.warp_size == 64
    assert profile.max_num_warps == 16  # 1024 threads / 64 lanes
    assert profile.compute_units == 304
    assert profile.name == "amd:gfx942"
    # however wide the block, a launch never asks for more than 1024 threads
    for block in (16, 1024, 4096, 16384, 65536):
        assert profile.num_warps(block) * profile.warp_size <= 1024
    assert profile.num_warps(65536) == 16


def test_profile_falls_back_when_properties_are_missing(amd_gpu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index=0: fake_props(warp_size=0))
    profile = amd_profile(torch.device("cuda", 0))
    assert profile.warp_size == 64 and profile.max_num_warps == 16
    assert profile.onchip_bytes == 64 * 1024


def test_probe_needs_a_hip_build(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    ok, reason = probe()
    assert not ok and "not a ROCm build" in reason


def test_probe_needs_a_visible_gpu(amd_gpu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ok, reason = probe()
    assert not ok and "no AMD GPU" in reason


def test_probe_passes_on_a_hip_build_with_a_gpu(amd_gpu, monkeypatch):
    monkeypatch.setattr(triton_check, "triton_problem", lambda: None)
    assert probe() == (True, "1 ROCm device(s): AMD Instinct MI300X, HIP 6.4.0")


def test_backend_claims_cuda_device_type_with_every_core_op():
    from liger_kernel.ops import OPS

    assert BACKEND.device_types == ("cuda",)
    assert set(BACKEND.implementations) == set(OPS)
    assert all(spec.startswith("liger_kernel.triton.") for spec in BACKEND.implementations.values())
    assert BACKEND.prepare == "liger_kernel_rocm.triton_check:require_rocm_triton"


rocm_mock = pytest.importorskip("liger_conformance.mocks.rocm")


def mock_profile(props):
    with rocm_mock.active(props):
        return amd_profile(torch.device("cpu"))


@pytest.mark.parametrize("props", [rocm_mock.MI300X, rocm_mock.MI355X], ids=["gfx942", "gfx950"])
def test_direct_launch_stays_off_on_amd(props):
    """launch()'s cache key holds what Triton specializes on for NVIDIA, not the AMD
    backend's buffer-ops specialization: relaunching a kept kernel could pick the wrong one."""
    assert mock_profile(props).direct_launch is False


def test_gfx950_profile_has_its_lds_and_compute_units():
    profile = mock_profile(rocm_mock.MI355X)
    assert profile.name == "amd:gfx950:sramecc+:xnack-"
    assert profile.onchip_bytes == 160 * 1024 and profile.compute_units == 256
    assert mock_profile(rocm_mock.MI300X).onchip_bytes == 64 * 1024


@pytest.mark.parametrize("props", [rocm_mock.MI300X, rocm_mock.MI355X], ids=["gfx942", "gfx950"])
def test_persistent_grids_reach_1024_work_groups(props):
    """AMD's MI300X guidance: at least about 1024 work-groups to fill the GPU."""
    profile = mock_profile(props)
    assert profile.grid(10**6) >= 1024
    assert profile.compute_units * profile.vocab_programs_per_unit >= 1024


def test_loops_are_not_pipelined_into_registers():
    """Triton's AMD pipeliner keeps no-dot loads in registers; 3 stages spill (tools/compile_kernels.py)."""
    from liger_kernel.triton.launch import pipeline_stages

    profile = mock_profile(rocm_mock.MI300X)
    assert profile.pipeline_stages == 1
    assert pipeline_stages(profile, 1024) == 1


def test_vocabulary_blocks_are_sized_by_registers_not_lds():
    """The vocabulary kernels keep their blocks in VGPRs: LDS size does not change them, the register budget does."""
    import dataclasses

    from liger_kernel.triton import cross_entropy, jsd, kl_div
    from liger_kernel.triton.launch import register_block

    profile = mock_profile(rocm_mock.MI300X)
    assert profile.register_budget() == 128 * 1024  # 512 KiB of VGPRs per CU over 4 programs
    for per_element in (
        cross_entropy.BYTES_PER_BLOCK_ELEMENT,
        jsd.BYTES_PER_BLOCK_ELEMENT,
        kl_div.BYTES_PER_BLOCK_COLUMN,
    ):
        block = register_block(profile, 128256, per_element)
        assert register_block(dataclasses.replace(profile, onchip_bytes=16 * 1024), 128256, per_element) == block
        assert register_block(dataclasses.replace(profile, register_bytes=16 * 1024), 128256, per_element) < block
    # twice the blocks the 64 KiB of LDS gave (JSD 1024 -> 2048, KL-div and TVD 2048 -> 4096)
    assert register_block(profile, 128256, jsd.BYTES_PER_BLOCK_ELEMENT) == 2048
    assert kl_div.streaming_launch(profile, 8, 128256).block == 4096
