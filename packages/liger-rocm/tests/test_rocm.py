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
    assert set(BACKEND.ops) == set(OPS)
    assert all(spec.startswith("liger_kernel_rocm.ops:") for spec in BACKEND.ops.values())
